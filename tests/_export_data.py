"""A store holding three days of scored transactions from two model versions, alerts and labels:
what the export tests read back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudstream.schema import KINDS, LabelMessage, ScoredBatch, TxBatch
from fraudstream.sinks import Store

DAY_MS = 86_400_000
#: 2026-12-01T00:00Z
T0_MS = 1_796_083_200_000
NAMES_A = ("amount", "log_amount", "hour_of_day")
NAMES_B = ("amount", "tx_count_by_account_1h")


@dataclass(frozen=True)
class Filled:
    """What :func:`fill` wrote: per tx id, its day index, model version and features."""

    tx_day: dict[str, int]
    features: dict[str, dict[str, float]]
    alerts: int
    labels: list[LabelMessage]


def _batch(start: int, n: int, version: str, names: tuple[str, ...], t0: int) -> ScoredBatch:
    rng = np.random.default_rng(start)
    ids = [f"tx-{start + i:07d}" for i in range(n)]
    times = t0 + np.sort(rng.integers(0, 3 * DAY_MS, n)).astype(np.int64)
    features = rng.random((n, len(names)), dtype=np.float32)
    score = rng.random(n)
    decision = (score > 0.8).astype(np.int8) + (score > 0.95).astype(np.int8)
    tx = TxBatch(
        tx_id=ids,
        event_time_ms=times,
        account=[f"C{i % 50}" for i in range(start, start + n)],
        counterparty=[f"M{i % 7}" for i in range(start, start + n)],
        kind=(np.arange(n) % len(KINDS)).astype(np.int8),
        amount=np.round(rng.random(n) * 1000, 2),
        old_balance_orig=np.full(n, 500.0),
        new_balance_orig=np.full(n, np.nan),
        old_balance_dest=np.zeros(n),
        new_balance_dest=np.ones(n),
        label=(score > 0.9).astype(np.int8),
        step=np.arange(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )
    reasons = [[(names[0], float(features[i, 0]), 0.5)] if decision[i] else [] for i in range(n)]
    return ScoredBatch(
        tx=tx,
        feature_names=names,
        features=features,
        score=score,
        decision=decision,
        reasons=reasons,
        model_version=version,
        partition=(np.arange(n) % 3).astype(np.int32),
        offset=np.arange(start, start + n, dtype=np.int64),
        processed_at_ms=int(times.max()) + 5,
        rule_set_version=3,
        rules_fired=[("big_amount",) if decision[i] == 2 else () for i in range(n)],
        rules_shadow=[("night", "new_payee") if i % 5 == 0 else () for i in range(n)],
    )


def fill(store: Store, n: int = 600) -> Filled:
    """Write two batches (two model versions) over three days from ``T0_MS``, and labels."""
    tx_day: dict[str, int] = {}
    features: dict[str, dict[str, float]] = {}
    alerts = 0
    batches = [_batch(0, n, "v-a", NAMES_A, T0_MS), _batch(n, n // 2, "v-b", NAMES_B, T0_MS)]
    for b in batches:
        store.write(b)
        alerts += int((b.decision > 0).sum())
        for i, tx_id in enumerate(b.tx.tx_id):
            tx_day[tx_id] = int((b.tx.event_time_ms[i] - T0_MS) // DAY_MS)
            features[tx_id] = {
                k: float(v) for k, v in zip(b.feature_names, b.features[i], strict=True)
            }
    store.flush()
    labels = [
        LabelMessage(tx_id=f"tx-{i:07d}", label=1, labelled_at_ms=T0_MS + i * 3_600_000)
        for i in range(0, 60, 7)
    ]
    store.record_labels(labels)
    return Filled(tx_day, features, alerts, labels)
