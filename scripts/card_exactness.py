"""The columnar card engine against the reference on the whole handbook data, and both timed.

Usage: ``.venv/bin/python scripts/card_exactness.py [--rows N] [--chunk 10000]``. Replays the
handbook's rows (time order) with its labels known 7 days later through both engines in the same
process, in batches of ``--chunk``; prints throughput of each (after ``warm_up``), the rows and
columns that differ (bit for bit), entities held and state bytes per customer and terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fraudstream.features import CARD_FEATURES, CardFeatureEngine
from fraudstream.features._card_reference import CardReferenceEngine
from fraudstream.model._fdh import fdh_batch, fdh_labels, load_fdh
from fraudstream.model._train import label_book

DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=0, help="first N rows only (0: all)")
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    df = load_fdh(args.data)
    if args.rows:
        df = df.head(args.rows)
    labels = fdh_labels(df)
    batches = [fdh_batch(df.slice(i, args.chunk)) for i in range(0, df.height, args.chunk)]
    out = {}
    for name, cls in (("columnar", CardFeatureEngine), ("reference", CardReferenceEngine)):
        engine = cls(labels=label_book(labels))
        engine.warm_up()
        start = time.perf_counter()
        out[name] = np.concatenate([engine.update_and_extract(b) for b in batches])
        took = time.perf_counter() - start
        sys.stdout.write(
            f"{name}: {df.height:,} rows in {took:.1f} s = {df.height / took:,.0f} tx/s\n"
        )
        if isinstance(engine, CardFeatureEngine):
            (customers, terminals), (cust_b, term_b) = engine.entity_count(), engine.state_bytes()
            per_c, per_t = cust_b / max(customers, 1), term_b / max(terminals, 1)
            sys.stdout.write(
                f"  held: {customers:,} customers, {terminals:,} terminals; bytes per customer "
                f"{per_c:,.0f}, per terminal {per_t:,.0f}\n"
            )
    a, b = out["columnar"], out["reference"]
    same = (a.view(np.uint32) == b.view(np.uint32)) | (a == b)
    sys.stdout.write(f"rows differing: {int((~same.all(axis=1)).sum()):,} of {len(a):,}\n")
    for j in np.flatnonzero(~same.all(axis=0)):
        sys.stdout.write(f"  {CARD_FEATURES[j]}: {int((~same[:, j]).sum()):,} rows\n")
    return 0 if same.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
