"""Average precision of both PaySim modes on the same simulated history.

``python scripts/paysim_modes.py [ROWS [SEED]]`` simulates ``ROWS`` transactions (fraud robots
on), trains a bundle per mode with :func:`fraudstream.model.train_bundle` (time-ordered split, gap,
calibration on the last part of train) and prints one JSON line per mode: test average precision
and ROC AUC of LightGBM and the logistic baseline, with the split's rows and fraud counts.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from fraudstream.model import train_bundle
from fraudstream.simulate import PaySimSimulator

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    history = PaySimSimulator(accounts=20_000, seed=seed, rate_per_s=500.0).history(rows)
    for mode in ("pre_auth", "post_tx"):
        started = time.monotonic()
        bundle = train_bundle(history, mode=mode, seed=seed, gap_ms=60_000)
        m = bundle.metrics
        out = {
            "mode": mode,
            "rows": rows,
            "seed": seed,
            **{
                f"{k}_{model}": m[model][k]
                for model in ("lightgbm", "logreg")
                for k in ("average_precision", "roc_auc")
            },
            **{
                k: m["data"][k]
                for k in (
                    "train_rows",
                    "train_frauds",
                    "calibration_rows",
                    "calibration_frauds",
                    "test_rows",
                    "test_frauds",
                    "gap_ms",
                )
            },
            "seconds": round(time.monotonic() - started, 1),
        }
        sys.stdout.write(json.dumps(out) + "\n")
