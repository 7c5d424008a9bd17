"""Cost of the detector's drift monitor per transaction, in-process (docs/drift.md).

Features of simulated PaySim traffic through the real engine, a reference built from them, then
``DriftMonitor.add`` timed over the same rows cut into batches of several sizes (best of
``--repeat`` passes, so other processes on the machine weigh less).

    .venv/bin/python scripts/drift_bench.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fraudstream.features import engine_for
from fraudstream.model._drift import build_reference
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream._drift import DriftMonitor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batches", default="100,1000,5000,20000")
    a = p.parse_args()
    history = PaySimSimulator(accounts=20_000, seed=1).history(a.rows)
    x = engine_for("pre_auth").update_and_extract(history)
    score = np.random.default_rng(0).beta(0.5, 30, len(x))
    reference = build_reference(x, score, engine_for("pre_auth").feature_names)
    t = history.event_time_ms
    print(f"{len(reference.names)} histograms, {len(x):,} rows")
    for size in [int(s) for s in a.batches.split(",")]:
        best = np.inf
        for _ in range(a.repeat):
            monitor = DriftMonitor(reference, model_version="bench", window_ms=60_000)
            started = time.perf_counter()
            for lo in range(0, len(x), size):
                monitor.add(t[lo : lo + size], x[lo : lo + size], score[lo : lo + size])
            best = min(best, time.perf_counter() - started)
        print(f"batch {size:>6,}: {best / len(x) * 1e6:.3f} us/transaction")


if __name__ == "__main__":
    main()
