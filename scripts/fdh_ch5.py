"""Chapter 5 protocol with a chosen selection metric.

``python scripts/fdh_ch5.py DATA METRIC [MODEL [GRID_JSON]]``; METRIC is a metric key or ``ap+cp``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from fraudstream.model._fdh import fdh_features, fdh_labels, load_fdh, run_ch5

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    df = load_fdh(Path(sys.argv[1]))
    d = fdh_features(df, fdh_labels(df))
    model = sys.argv[3] if len(sys.argv) > 3 else "lgbm"
    grid = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
    result = run_ch5(d, model, model == "lgbm", sys.argv[2], grid)  # type: ignore[arg-type]
    result["seconds"] = round(time.monotonic() - started, 1)
    sys.stdout.write(json.dumps(result) + "\n")
