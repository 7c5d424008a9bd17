"""Fill a store with synthetic scored transactions, alerts and window stats (for the dashboard).

Rows go through the store's own ``write`` path (so they look exactly like the detector's), in
batches built with numpy; the process lowers its priority (nice 10) first. Event times end now,
at ``--rate`` transactions per second, so "the last hour" holds data. Some older alerts get an
analyst verdict, and a few notification failures are recorded.

    .venv/bin/python scripts/seed_store.py --url sqlite:///data/seed10m.db --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

from fraudstream.dashboard import Database
from fraudstream.features import feature_names
from fraudstream.schema import KINDS, ScoredBatch, TxBatch, WindowStats
from fraudstream.sinks import open_store

log = logging.getLogger("seed_store")

_WINDOW_MS = 30_000
_REVIEW, _BLOCK = 0.08, 0.6
_VERSION = "seed-v1"
_KIND_P = np.array([0.34, 0.08, 0.35, 0.22, 0.01])


def _batch(
    rng: np.random.Generator, start: int, n: int, t0_ms: int, rate: float, args: argparse.Namespace
) -> tuple[ScoredBatch, np.ndarray]:
    idx = np.arange(start, start + n)
    times = (
        t0_ms + (idx * 1000.0 / rate).astype(np.int64) + rng.integers(0, int(1000 / rate) + 1, n)
    )
    times.sort()
    kind = rng.choice(len(KINDS), n, p=_KIND_P).astype(np.int8)
    risky = (kind == 1) | (kind == 2)
    fraud = (rng.random(n) < np.where(risky, args.fraud_rate * 3.0, args.fraud_rate * 0.1)).astype(
        np.int8
    )
    amount = np.round(np.exp(rng.normal(8.0, 1.6, n)) * np.where(fraud == 1, 4.0, 1.0), 2)
    score = np.where(fraud == 1, rng.beta(2.2, 2.0, n), rng.beta(0.35, 40.0, n))
    decision = (score >= _REVIEW).astype(np.int8) + (score >= _BLOCK).astype(np.int8)
    acc = rng.integers(0, args.accounts, n)
    dest = rng.integers(0, args.accounts // 4, n)
    names = feature_names("pre_auth")
    feats = rng.normal(0.0, 1.0, (n, len(names))).astype(np.float32)
    feats[:, 0] = amount
    reasons: list[list[tuple[str, float, float]]] = [[] for _ in range(n)]
    for i in np.flatnonzero(decision > 0).tolist():
        top = rng.choice(len(names), 3, replace=False)
        reasons[i] = [
            (names[j], float(feats[i, j]), float(c))
            for j, c in zip(top, sorted(rng.random(3) * 2, reverse=True), strict=True)
        ]
    tx = TxBatch(
        tx_id=[f"seed-{i:010d}" for i in idx.tolist()],
        event_time_ms=times,
        account=[f"C{a:08d}" for a in acc.tolist()],
        counterparty=[
            f"M{d:07d}" if k == 0 else f"C{d:08d}"
            for d, k in zip(dest.tolist(), kind.tolist(), strict=True)
        ],
        kind=kind,
        amount=amount,
        old_balance_orig=np.full(n, np.nan),
        new_balance_orig=np.full(n, np.nan),
        old_balance_dest=np.full(n, np.nan),
        new_balance_dest=np.full(n, np.nan),
        label=fraud,
        step=(times - t0_ms) // 3_600_000,
        flagged=np.zeros(n, np.int8),
    )
    batch = ScoredBatch(
        tx=tx,
        feature_names=names,
        features=feats,
        score=score,
        decision=decision,
        reasons=reasons,
        model_version=_VERSION,
        partition=(acc % 4).astype(np.int32),
        offset=idx // 4,
        processed_at_ms=int(times[-1]) + 150,
    )
    return batch, np.stack([times, fraud, decision > 0, amount.astype(np.int64)])


def _windows(per_s: np.ndarray, t0_s: int) -> list[WindowStats]:
    """30 s windows ending at every second, from per-second sums.

    Columns of ``per_s``: transactions, frauds, alerts, amount, fraud amount.
    """
    csum = np.vstack([np.zeros((1, per_s.shape[1])), np.cumsum(per_s, axis=0)])
    w = _WINDOW_MS // 1000
    out = []
    for end in range(1, len(per_s) + 1):
        s = csum[end] - csum[max(end - w, 0)]
        out.append(
            WindowStats(
                (t0_s + end) * 1000,
                _WINDOW_MS,
                int(s[0]),
                int(s[1]),
                int(s[2]),
                float(s[3]),
                float(s[4]),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="store URL (sqlite:///… or postgresql://…)")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rate", type=float, default=500.0, help="transactions per second")
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--fraud-rate", type=float, default=0.002)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verdict-share", type=float, default=0.05, help="alerts given a verdict")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.nice(10)
    rng = np.random.default_rng(args.seed)
    span_s = int(np.ceil(args.rows / args.rate)) + 2
    t0_s = time.time_ns() // 1_000_000_000 - span_s
    per_s = np.zeros((span_s + 2, 5))
    store = open_store(args.url, schema=args.schema)
    store.open()
    store.record_model_version(
        _VERSION, json.dumps({"note": "synthetic scores from scripts/seed_store.py"})
    )
    verdicts: list[tuple[str, str, int]] = []
    started = time.perf_counter()
    for start in range(0, args.rows, args.batch):
        n = min(args.batch, args.rows - start)
        batch, cols = _batch(rng, start, n, t0_s * 1000, args.rate, args)
        store.write(batch)
        store.flush()
        sec = (cols[0] // 1000 - t0_s).astype(np.int64)
        for j, weights in enumerate((None, cols[1], cols[2], cols[3], cols[3] * cols[1])):
            per_s[:, j] += np.bincount(sec, weights=weights, minlength=len(per_s))[: len(per_s)]
        for i in batch.alert_index().tolist():
            if rng.random() < args.verdict_share:
                status = "confirmed_fraud" if batch.tx.label[i] == 1 else "false_positive"
                verdicts.append((status, batch.tx.tx_id[i], batch.processed_at_ms + 600_000))
        if (start // args.batch) % 200 == 0:
            done = start + n
            log.info("%s rows (%.0f rows/s)", f"{done:,}", done / (time.perf_counter() - started))
    last_s = int(np.flatnonzero(per_s[:, 0])[-1]) + 1
    store.write_window_stats(_windows(per_s[:last_s], t0_s))
    if hasattr(store, "record_notification_failure"):
        for k, (_, alert_id, _) in enumerate(verdicts[:3]):
            store.record_notification_failure(
                alert_id, "webhook", 5, f"HTTP 503 from hook (seed {k})", "{}"
            )
    store.close()
    db = Database(args.url, schema=args.schema)
    db.execute_many(
        "UPDATE fraud_alerts SET status = ?, analyst = 'seed', reviewed_at_ms = ?"
        " WHERE alert_id = ?",
        [(s, t, a) for s, a, t in verdicts],
    )
    db.close()
    log.info(
        "done: %s rows, %s verdicts in %.0f s",
        f"{args.rows:,}",
        f"{len(verdicts):,}",
        time.perf_counter() - started,
    )


if __name__ == "__main__":
    main()
