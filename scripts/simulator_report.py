"""Measure the simulators and write the figures into docs/simulator.md and docs/img/simulator_*.png.

Usage: ``.venv/bin/python scripts/simulator_report.py [--rows 1000000]``. Simulates ``--rows``
PaySim rows with the parameters ``fraudstream simulate --out`` uses by default, and as many card
rows, and compares them with PaySim's published figures and with the Fraud Detection Handbook's
data (``../shared/data/fdh/transactions.parquet``, if present). Everything between the report
markers of docs/simulator.md is replaced; the prose around it is left alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pyarrow as pa

from fraudstream.schema import KINDS
from fraudstream.simulate import (
    CARD_ROBOTS,
    ROBOTS,
    CardSimulator,
    PaySimSimulator,
    card_table,
    paysim_table,
)

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = ROOT / "docs" / "simulator.md"
IMG: Final = ROOT / "docs" / "img"
FDH: Final = ROOT / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
BEGIN: Final = "<!-- simulator_report:begin -->"
END: Final = "<!-- simulator_report:end -->"
QUANTILES: Final = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

#: PaySim's one-month log (Kaggle ``PS_20174392719_1491204439457_log.csv``, 6,362,620 rows):
#: type shares as the issue quotes them; overall amount statistics and label means from that
#: file's ``describe()`` (e.g. github.com/vnsdinesh/aml-phd-prep).
PAYSIM_SHARES: Final = {
    "CASH_OUT": 0.352,
    "PAYMENT": 0.338,
    "CASH_IN": 0.220,
    "TRANSFER": 0.084,
    "DEBIT": 0.0065,
}
#: Mean amount per type in that file, as public analyses of it report them (their share-weighted
#: sum reproduces the published overall mean to 0.03 %).
PAYSIM_MEAN_BY_TYPE: Final = {
    "CASH_IN": 168_920.24,
    "CASH_OUT": 176_273.96,
    "DEBIT": 5_483.67,
    "PAYMENT": 13_057.60,
    "TRANSFER": 910_647.01,
}
PAYSIM_AMOUNT: Final = {"mean": 179_861.9, "q25": 13_389.57, "q50": 74_871.94, "q75": 208_721.5}
PAYSIM_FRAUD_SHARE: Final = 0.00129082
PAYSIM_FLAGGED_SHARE: Final = 2.514687e-06


def mean(d: pl.DataFrame, column: str) -> float:
    return float(d[column].cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]


def paysim_frame(rows: int, seed: int) -> pl.DataFrame:
    """``rows`` rows as ``fraudstream simulate --out`` writes them by default."""
    sim = PaySimSimulator(accounts=20_000, seed=seed, rate_per_s=500.0, start_ms=0)
    parts = [
        as_frame(paysim_table(sim.history(min(200_000, rows - done))))
        for done in range(0, rows, 200_000)
    ]
    return pl.concat(parts)


def card_frame(rows: int, seed: int) -> pl.DataFrame:
    sim = CardSimulator(seed=seed)
    return as_frame(card_table(sim.next_columns(rows), sim.start_ms))


def as_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def paysim_tables(df: pl.DataFrame) -> tuple[list[str], dict[str, Any]]:
    n = df.height
    out = [f"### PaySim format: {n:,} rows", ""]
    out += ["| type | ours | PaySim (published) |", "|---|---|---|"]
    shares = {k: df.filter(pl.col("type") == k).height / n for k in KINDS}
    for k in sorted(KINDS, key=lambda k: -PAYSIM_SHARES[k]):
        out.append(f"| {k} | {shares[k]:.2%} | {PAYSIM_SHARES[k]:.2%} |")
    out += ["", "Amount per type: our quantiles, and our mean beside PaySim's:", ""]
    head = " | ".join(f"p{int(q * 100)}" for q in QUANTILES)
    out += [
        f"| type | rows | mean | PaySim mean | {head} | max |",
        "|---" * (len(QUANTILES) + 5) + "|",
    ]
    for k in KINDS:
        a = df.filter(pl.col("type") == k)["amount"].to_numpy()
        qs = " | ".join(fmt(v) for v in np.quantile(a, QUANTILES))
        paysim = fmt(PAYSIM_MEAN_BY_TYPE[k])
        out.append(f"| {k} | {len(a):,} | {fmt(a.mean())} | {paysim} | {qs} | {fmt(a.max())} |")
    a = df["amount"].to_numpy()
    q25, q50, q75 = np.quantile(a, (0.25, 0.5, 0.75))
    out += [
        "",
        "All types together, beside PaySim's published `describe()`:",
        "",
        "| | mean | p25 | p50 | p75 | fraud share | flagged share |",
        "|---|---|---|---|---|---|---|",
        f"| ours | {fmt(a.mean())} | {fmt(q25)} | {fmt(q50)} | {fmt(q75)} | "
        f"{mean(df, 'isFraud'):.3%} | {mean(df, 'isFlaggedFraud'):.3%} |",
        f"| PaySim | {fmt(PAYSIM_AMOUNT['mean'])} | {fmt(PAYSIM_AMOUNT['q25'])} | "
        f"{fmt(PAYSIM_AMOUNT['q50'])} | {fmt(PAYSIM_AMOUNT['q75'])} | "
        f"{PAYSIM_FRAUD_SHARE:.3%} | {PAYSIM_FLAGGED_SHARE:.4%} |",
        "",
    ]
    frauds = df.filter(pl.col("isFraud") == 1)
    out += ["Frauds per robot (PaySim itself has only TRANSFER + CASH_OUT frauds):", ""]
    out += ["| robot | frauds | types | median amount |", "|---|---|---|---|"]
    per_robot: dict[str, int] = {}
    for name in ROBOTS:
        f = frauds.filter(pl.col("fraudScenario") == name)
        per_robot[name] = f.height
        counts = f.group_by("type").len().sort("len", descending=True)
        types = ", ".join(f"{t!s} {int(c):,}" for t, c in counts.iter_rows())
        med = fmt(float(f["amount"].median())) if f.height else "-"  # type: ignore[arg-type]
        out.append(f"| {name} | {f.height:,} | {types} | {med} |")
    out.append(f"| **all** | {frauds.height:,} ({frauds.height / n:.3%}) | | |")
    out += ["", *balance_lines(df), ""]
    return out, {"shares": shares, "per_robot": per_robot}


def balance_lines(df: pl.DataFrame) -> list[str]:
    """How often a row is deliberately inconsistent (overdraft clipped at 0, as in PaySim)."""
    debit = df.filter(pl.col("type") != "CASH_IN")
    overdraft = debit.filter(pl.col("amount") > pl.col("oldbalanceOrg") + 0.005)
    cash_in = df.filter(pl.col("type") == "CASH_IN")
    agent_short = cash_in.filter(pl.col("amount") > pl.col("oldbalanceDest") + 0.005)
    return [
        "Deliberate balance inconsistencies, measured: "
        f"{overdraft.height:,} rows ({overdraft.height / df.height:.2%}) pay more than the "
        "payer's balance (new balance clipped at 0, the payee still receives the full amount); "
        f"{agent_short.height:,} CASH_IN rows ({agent_short.height / df.height:.2%}) exceed the "
        "cash agent's balance (the agent's balance is clipped at 0). All other rows balance "
        "to the cent.",
    ]


def card_tables(ours: pl.DataFrame, fdh: pl.DataFrame | None) -> list[str]:
    def stats(d: pl.DataFrame) -> dict[str, str]:
        days = int(d["TX_TIME_DAYS"].max()) + 1  # type: ignore[arg-type]
        a = d["TX_AMOUNT"].to_numpy()
        qs = np.quantile(a, (0.25, 0.5, 0.75, 0.99))
        row = {
            "rows": f"{d.height:,}",
            "days": f"{days:,}",
            "tx/day": f"{d.height / days:,.0f}",
            "customers": f"{d['CUSTOMER_ID'].n_unique():,}",
            "terminals": f"{d['TERMINAL_ID'].n_unique():,}",
            "amount mean": f"{a.mean():.2f}",
            "p25/p50/p75/p99": " / ".join(f"{q:.2f}" for q in qs),
            "fraud share": f"{mean(d, 'TX_FRAUD'):.3%}",
        }
        for i, name in enumerate(CARD_ROBOTS, start=1):
            row[f"{i} {name}"] = f"{d.filter(pl.col('TX_FRAUD_SCENARIO') == i).height:,}"
        return row

    mine = stats(ours)
    theirs = stats(fdh) if fdh is not None else dict.fromkeys(mine, "(absent)")
    out = [f"### Card format: {ours.height:,} rows", ""]
    out += ["| | ours | the handbook's data |", "|---|---|---|"]
    out += [f"| {k} | {mine[k]} | {theirs[k]} |" for k in mine]
    return out


def plot(paysim: pl.DataFrame, card: pl.DataFrame, fdh: pl.DataFrame | None, info: Any) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    kinds = sorted(KINDS, key=lambda k: -PAYSIM_SHARES[k])
    x = np.arange(len(kinds))
    ax[0].bar(x - 0.2, [info["shares"][k] for k in kinds], 0.4, label="simulated")
    ax[0].bar(x + 0.2, [PAYSIM_SHARES[k] for k in kinds], 0.4, label="PaySim (published)")
    ax[0].set_xticks(x, kinds, fontsize=8)
    ax[0].set_title("type shares")
    ax[0].legend()
    bins = np.logspace(-1, 8, 90)
    for k in KINDS:
        a = paysim.filter(pl.col("type") == k)["amount"].to_numpy()
        ax[1].hist(a, bins=bins, histtype="step", label=k)
    ax[1].set_xscale("log")
    ax[1].set_title("amount per type (log scale)")
    ax[1].legend(fontsize=8)
    robots = list(info["per_robot"])
    ax[2].barh(robots, [info["per_robot"][r] for r in robots])
    ax[2].set_title(f"frauds per robot ({paysim.height:,} rows)")
    fig.tight_layout()
    fig.savefig(IMG / "simulator_paysim.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(0, 300, 121)
    ax[0].hist(card["TX_AMOUNT"].to_numpy(), bins=bins, histtype="step", density=True, label="ours")
    if fdh is not None:
        ax[0].hist(
            fdh["TX_AMOUNT"].to_numpy(), bins=bins, histtype="step", density=True, label="handbook"
        )
    ax[0].set_title("card amounts")
    ax[0].legend()
    hours = np.arange(25)
    for d, label in ((card, "ours"), (fdh, "handbook")):
        if d is not None:
            h = (d["TX_TIME_SECONDS"].to_numpy() % 86_400) // 3_600
            ax[1].hist(h, bins=hours, histtype="step", density=True, label=label)
    ax[1].set_title("hour of day")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(IMG / "simulator_card.png", dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    paysim = paysim_frame(args.rows, args.seed)
    fdh = pl.read_parquet(FDH) if FDH.is_file() else None
    card = card_frame(args.rows if fdh is None else fdh.height, args.seed)  # same length
    lines, info = paysim_tables(paysim)
    lines += card_tables(card, fdh)
    plot(paysim, card, fdh, info)
    lines += [
        "",
        "![PaySim format](img/simulator_paysim.png)",
        "",
        "![Card format](img/simulator_card.png)",
        "",
        f"_Generated by `scripts/simulator_report.py --rows {args.rows} --seed {args.seed}` "
        f"on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"({time.monotonic() - started:.0f} s)._",
    ]
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}")


if __name__ == "__main__":
    main()
