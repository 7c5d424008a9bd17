"""Measure the simulator's labels and write them into docs/simulator.md and docs/img/.

Usage: ``.venv/bin/python scripts/label_delays.py [--rows 1000000] [--seed 7]``. Simulates
``--rows`` PaySim rows with the parameters ``fraudstream simulate --out`` uses by default, draws
their labels with the default :class:`~fraudstream.simulate.LabelMix` (what ``--out`` writes to
``FILE.labels.parquet``), and replaces everything between the label markers of docs/simulator.md
with a table of shares and delay quantiles; the histogram goes to docs/img/simulator_labels.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fraudstream.simulate import LabelMix, PaySimSimulator, batch_labels

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = ROOT / "docs" / "simulator.md"
PNG: Final = ROOT / "docs" / "img" / "simulator_labels.png"
BEGIN: Final = "<!-- label_delays:begin -->"
END: Final = "<!-- label_delays:end -->"
HOUR: Final = 3_600_000.0
DAY: Final = 24 * HOUR
QUANTILES: Final = (0.05, 0.25, 0.5, 0.75, 0.95)
SOURCES: Final = ("analyst", "chargeback", "dispute")
COLOURS: Final = {"analyst": "#1f77b4", "chargeback": "#d62728", "dispute": "#ff7f0e"}


def _span(ms: float) -> str:
    if ms < DAY:
        return f"{ms / HOUR:.1f} h" if ms >= HOUR else f"{ms / 60_000:.0f} min"
    return f"{ms / DAY:.1f} d"


def _measure(rows: int, seed: int) -> tuple[dict[str, np.ndarray], int, int, float]:
    started = time.monotonic()
    batch = PaySimSimulator(seed=seed).history(rows)
    labels = batch_labels(batch, seed=seed)
    event = dict(zip(batch.tx_id, batch.event_time_ms.tolist(), strict=True))
    delays = {
        s: np.array(
            [m.labelled_at_ms - event[m.tx_id] for m in labels if m.source == s], dtype=float
        )
        for s in SOURCES
    }
    frauds = int((batch.label == 1).sum())
    return delays, frauds, rows - frauds, time.monotonic() - started


def _table(delays: dict[str, np.ndarray], frauds: int, genuine: int, mix: LabelMix) -> list[str]:
    heads = " | ".join(f"p{int(q * 100)}" for q in QUANTILES)
    out = [
        f"| source | of | labels | share | configured | {heads} | min | max |",
        "|---|---|---|---|---|" + "---|" * (len(QUANTILES) + 2),
    ]
    configured = {
        "analyst": mix.analyst_share,
        "chargeback": mix.chargeback_share,
        "dispute": mix.dispute_share,
    }
    for s in SOURCES:
        d, base = delays[s], genuine if s == "dispute" else frauds
        qs = " | ".join(_span(float(v)) for v in np.quantile(d, QUANTILES))
        share = f"{len(d) / base:.2%}" if s != "dispute" else f"{len(d) / base:.3%}"
        conf = f"{configured[s]:.2%}" if s != "dispute" else f"{configured[s]:.3%}"
        kind = "genuine" if s == "dispute" else "frauds"
        out.append(
            f"| {s} | {base:,} {kind} | {len(d):,} | {share} | {conf} | {qs} | "
            f"{_span(float(d.min()))} | {_span(float(d.max()))} |"
        )
    labelled = len(delays["analyst"]) + len(delays["chargeback"])
    blanks = " |" * (len(QUANTILES) + 2)
    out.append(
        f"| never reported | {frauds:,} frauds | {frauds - labelled:,} | "
        f"{(frauds - labelled) / frauds:.2%} | {mix.unreported_share:.2%} |{blanks}"
    )
    return out


def _plot(delays: dict[str, np.ndarray]) -> None:
    bins = np.logspace(np.log10(60_000), np.log10(61 * DAY), 60)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.hist(
        [delays[s] for s in SOURCES],
        bins=bins,
        stacked=True,
        color=[COLOURS[s] for s in SOURCES],
        label=[f"{s} ({len(delays[s]):,})" for s in SOURCES],
    )
    ax.set_xscale("log")
    ticks = [5 * 60_000, HOUR, 6 * HOUR, DAY, 2 * DAY, 7 * DAY, 21 * DAY, 60 * DAY]
    ax.set_xticks(ticks, ["5 min", "1 h", "6 h", "1 d", "2 d", "7 d", "21 d", "60 d"])
    ax.set_xlabel("label time - transaction time (log scale)")
    ax.set_ylabel("labels")
    ax.set_title("Simulated label delays: analyst verdicts, chargebacks, disputes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(PNG, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    mix = LabelMix()
    delays, frauds, genuine, took = _measure(args.rows, args.seed)
    _plot(delays)
    total = sum(len(d) for d in delays.values())
    lines = [
        BEGIN,
        f"Measured on {args.rows:,} simulated PaySim rows (seed {args.seed}, the defaults of "
        f"`fraudstream simulate --out`): {total:,} labels, {total / args.rows:.3%} of the "
        "transactions. Shares are of the frauds (analyst, chargeback, never reported) or of the "
        "genuine transactions (dispute); quantiles are the delay from the transaction to its "
        "label.",
        "",
        *_table(delays, frauds, genuine, mix),
        "",
        f"![Label delays](img/{PNG.name})",
        "",
        f"_Generated by `scripts/label_delays.py --rows {args.rows} --seed {args.seed}` "
        f"on {time.strftime('%Y-%m-%d')} ({took:.0f} s)._",
        END,
    ]
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join(lines) + tail, encoding="utf-8")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
