"""Drift evidence (docs/drift.md): a stable stream and a stream whose robot mix and amounts change.

A PaySim simulator runs ``--history-hours`` of event time; a bundle is trained on it (its drift
reference is the test part, the latest rows). Then the same simulator goes on for ``--hours``
through the real feature engine (state warm from the history, labels as the live simulator sends
them) and the bundle, and the detector's :class:`DriftMonitor` (``FRAUDSTREAM_DRIFT__…``
defaults) takes the scored batches. A second run is the same stream with a ``MixShift`` at
``--shift-hours`` into the continuation. Prints the figures as JSON, draws ``--plot``.

    .venv/bin/python scripts/drift_evidence.py --plot docs/img/drift_psi.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.config import DriftSettings
from fraudstream.features import engine_for
from fraudstream.model import Bundle, train_bundle
from fraudstream.model._drift import feature_group
from fraudstream.model._train import label_book
from fraudstream.schema import LabelMessage, TxBatch
from fraudstream.simulate import MixShift, PaySimSimulator
from fraudstream.simulate._labels import batch_labels
from fraudstream.sinks import DriftWindow
from fraudstream.stream._drift import DriftMonitor, drift_monitor_for

HOUR_MS = 3_600_000


def simulate(sim: PaySimSimulator, end_ms: int) -> TxBatch:
    """The simulator's transactions up to event time ``end_ms``."""
    parts = []
    while True:
        part = sim.history(50_000)
        keep = part.event_time_ms < end_ms
        parts.append(part.take(np.flatnonzero(keep)))
        if not keep.all():
            return TxBatch.concat(parts)


def labels_of(stream: TxBatch, seed: int, with_labels: bool) -> list[LabelMessage]:
    return batch_labels(stream, seed=seed) if with_labels else []


def bundle_for(history: TxBatch, models: Path, seed: int, with_labels: bool) -> Bundle:
    """The bundle trained on ``history`` (kept in ``models`` between runs)."""
    marker = models / f"drift-evidence-{'labels' if with_labels else 'nolabels'}.txt"
    if marker.exists():
        return Bundle.load(models / marker.read_text().strip())
    started = time.monotonic()
    bundle = train_bundle(
        history,
        mode="pre_auth",
        seed=0,
        gap_ms=60_000,
        labels=labels_of(history, seed, with_labels),
    )
    path = bundle.save(models)
    marker.write_text(path.name)
    took_s = time.monotonic() - started
    print(f"trained {bundle.version} on {len(history.tx_id):,} rows in {took_s:.0f} s")
    return bundle


def run_stream(
    stream: TxBatch,
    history_rows: int,
    bundle: Bundle,
    settings: DriftSettings,
    seed: int,
    batch: int,
    with_labels: bool,
) -> tuple[list[DriftWindow], float, int]:
    """Windows of the monitor over ``stream[history_rows:]`` (state warm from the rows before),
    the monitor's seconds, and the rows it took."""
    engine = engine_for(bundle.mode, labels=label_book(labels_of(stream, seed, with_labels)))
    n = len(stream.tx_id)
    for lo in range(0, history_rows, 50_000):
        engine.update_and_extract(stream.take(np.arange(lo, min(lo + 50_000, history_rows))))
    monitor = drift_monitor_for(bundle, settings)
    assert isinstance(monitor, DriftMonitor), "the bundle has no drift reference"
    windows: list[DriftWindow] = []
    spent = 0.0
    for lo in range(history_rows, n, batch):
        part = stream.take(np.arange(lo, min(lo + batch, n)))
        x = engine.update_and_extract(part)
        score = bundle.score(x)
        started = time.perf_counter()
        windows += monitor.add(part.event_time_ms, x, score)
        spent += time.perf_counter() - started
    return windows, spent, n - history_rows


def summary(
    windows: list[DriftWindow], start_ms: int, shift_ms: int | None, settings: DriftSettings
) -> dict[str, Any]:
    """Figures of a run: PSI maxima (all histograms; those that can raise the alarm), alarms."""
    psi = np.array([w.psi for w in windows])
    names = windows[0].names
    counts = [
        i
        for i, n in enumerate(names)
        if feature_group(n) in settings.alarm_groups and n not in settings.ignore
    ]
    ends = np.array([w.window_end_ms for w in windows])
    before = ends <= (shift_ms if shift_ms is not None else ends.max())
    alarms = [w.window_end_ms for w in windows if w.alarm]
    top = np.argsort(-psi[before].max(axis=0))[:8]
    out: dict[str, Any] = {
        "windows": len(windows),
        "rows_per_window_median": int(np.median([w.rows for w in windows])),
        "max_psi_top8": {names[i]: round(float(psi[before][:, i].max()), 3) for i in top},
        "max_alarming_psi": round(float(psi[before][:, counts].max()), 3),
        "max_score_psi": round(float(psi[before][:, names.index("score")].max()), 3),
        "alarm_windows": len(alarms),
    }
    if shift_ms is not None:
        after = [t for t in alarms if t > shift_ms]
        out["alarm_delay_min"] = round((after[0] - shift_ms) / 60_000, 2) if after else None
        out["alarms_before_shift"] = len(alarms) - len(after)
        top_after = np.argsort(-psi[~before].max(axis=0))[:6]
        out["max_psi_after_shift"] = {
            names[i]: round(float(psi[~before][:, i].max()), 3) for i in top_after
        }
    return out


Run = tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]  # names, ends, psi, alarm


def as_run(windows: list[DriftWindow]) -> Run:
    return (
        windows[0].names,
        np.array([w.window_end_ms for w in windows]),
        np.array([w.psi for w in windows]),
        np.array([w.alarm for w in windows]),
    )


def plot(
    runs: dict[str, Run],
    start_ms: int,
    shift_ms: int,
    settings: DriftSettings,
    path: Path,
) -> None:
    """PSI over event time per run: the score, the features that can raise the alarm (top 4),
    the others that only show (top 3, grey), the threshold and the alarm's windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.8), sharey=True)
    for ax, (title, (names, ends, psi, alarm)) in zip(axes, runs.items(), strict=True):
        hours = (ends - start_ms) / HOUR_MS
        order = np.argsort(-psi.max(axis=0)).tolist()
        counts = [
            feature_group(n) in settings.alarm_groups and n not in settings.ignore for n in names
        ]
        for i in [i for i in order if counts[i] and names[i] != "score"][:4]:
            ax.plot(hours, np.maximum(psi[:, i], 1e-4), lw=1.2, label=names[i])
        for k, i in enumerate([i for i in order if not counts[i]][:3]):
            style = ("--", ":", "-.")[k]
            shown = f"{names[i]} (shown only)"
            ax.plot(hours, np.maximum(psi[:, i], 1e-4), lw=0.9, ls=style, color="grey", label=shown)
        s = names.index("score")
        ax.plot(hours, np.maximum(psi[:, s], 1e-4), lw=2.4, color="black", label="score")
        ax.axhline(settings.threshold, color="red", ls="--", lw=1, label="threshold")
        if alarm.any():
            ax.scatter(
                hours[alarm],
                np.full(int(alarm.sum()), settings.threshold * 1.15),
                marker="v",
                color="red",
                s=12,
                zorder=3,
                label="alarm holds",
            )
        if title != "stable":
            ax.axvline(
                (shift_ms - start_ms) / HOUR_MS,
                color="tab:blue",
                ls=":",
                lw=1.5,
                label="mix change",
            )
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("event time since the stream started (h)")
        ax.legend(fontsize=6.5, loc="lower right")
    axes[0].set_ylabel("PSI against the training reference (log scale)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10.0, help="mean tx/s of event time")
    p.add_argument("--accounts", type=int, default=1_000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--history-hours", type=float, default=26.0)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--shift-hours", type=float, default=2.0)
    p.add_argument("--shift-robots", default="card_testing,account_takeover")
    p.add_argument("--shift-fraud-rate", type=float, default=0.03)
    p.add_argument("--shift-amount-scale", type=float, default=2.0)
    p.add_argument(
        "--variants", default="", help="more shifted runs, AMOUNT_SCALE:FRAUD_RATE,... (figures)"
    )
    p.add_argument("--labels", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--ignore", default="", help="FRAUDSTREAM_DRIFT__IGNORE, comma-separated")
    p.add_argument("--batch", type=int, default=500, help="rows per scored batch")
    p.add_argument("--models", type=Path, default=Path("data/drift-evidence-models"))
    p.add_argument("--plot", type=Path)
    p.add_argument("--json", type=Path)
    p.add_argument("--windows", type=Path, help="every window's PSI (.npz)")
    p.add_argument("--replot", type=Path, help="draw --plot from a --windows file, run nothing")
    a = p.parse_args()
    settings = DriftSettings(ignore=tuple(n for n in a.ignore.split(",") if n))
    start_ms = int(a.history_hours * HOUR_MS)
    end_ms = int((a.history_hours + a.hours) * HOUR_MS)
    shift_ms = start_ms + int(a.shift_hours * HOUR_MS)
    if a.replot:
        saved = np.load(a.replot)
        runs_saved = {
            str(saved[f"title_{i}"]): (
                tuple(str(n) for n in saved[f"names_{i}"]),
                saved[f"end_ms_{i}"],
                saved[f"psi_{i}"],
                saved[f"alarm_{i}"],
            )
            for i in range(2)
        }
        plot(runs_saved, start_ms, shift_ms, settings, a.plot)
        return
    common = {"accounts": a.accounts, "seed": a.seed, "rate_per_s": a.rate}
    robots = a.shift_robots.split(",")
    stable = simulate(PaySimSimulator(**common), end_ms)
    history_rows = int(np.searchsorted(stable.event_time_ms, start_ms))
    a.models.mkdir(parents=True, exist_ok=True)
    bundle = bundle_for(stable.take(np.arange(history_rows)), a.models, a.seed, a.labels)
    out: dict[str, Any] = {
        "settings": settings.model_dump(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "bundle": bundle.version,
    }
    streams: list[tuple[str, float, float]] = [("stable", 1.0, -1.0)]
    streams.append(("mix change", a.shift_amount_scale, a.shift_fraud_rate))
    for variant in [v for v in a.variants.split(",") if v]:
        scale, rate = (float(f) for f in variant.split(":"))
        streams.append((f"amounts x{scale:g}, fraud rate {rate:g}", scale, rate))
    runs = {}
    for name, scale, rate in streams:
        if rate < 0:
            stream, at = stable, None
        else:
            shift = MixShift(shift_ms, robots, rate, scale)
            stream, at = simulate(PaySimSimulator(**common, shift=shift), end_ms), shift_ms
        windows, spent, rows = run_stream(
            stream, history_rows, bundle, settings, a.seed, a.batch, a.labels
        )
        runs[name] = windows
        out[name] = {
            **summary(windows, start_ms, at, settings),
            "monitor_us_per_tx": round(spent / rows * 1e6, 3),
            "rows": rows,
        }
        print(name, json.dumps(out[name]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    if a.plot:
        plot(
            {k: as_run(v) for k, v in list(runs.items())[:2]}, start_ms, shift_ms, settings, a.plot
        )
    if a.windows:
        arrays: dict[str, np.ndarray] = {}
        for i, (name, windows) in enumerate(runs.items()):
            names, ends, psi, alarm = as_run(windows)
            arrays |= {f"names_{i}": np.array(names), f"end_ms_{i}": ends, f"psi_{i}": psi}
            arrays |= {f"alarm_{i}": alarm, f"title_{i}": np.array(name)}
        np.savez(a.windows, **arrays)


if __name__ == "__main__":
    main()
