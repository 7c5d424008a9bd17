"""Micro-benchmark: 50 live rules on 20,000-transaction batches, beside the batch's feature time.

``python scripts/rules_bench.py [BATCHES [ROWS]]`` simulates PaySim history (fraud robots on),
warms a pre-authorisation :class:`~fraudstream.features.FeatureEngine` on 40,000 rows, then for
each of ``BATCHES`` (10) batches of ``ROWS`` (20,000) rows times (1) the features
(``update_and_extract``), (2) building the rules' columns (:func:`fraudstream.rules.batch_frame`,
only the columns the rules read) and (3) :meth:`RuleSet.decide` with 50 live rules (allow, block
and review; numbers, strings, flags, arithmetic, literal sets, a 5,000-entry and a 1,000-entry
list). The score is a stand-in (a logistic of three features, no model is trained): rules only
read it as a column. Prints the medians and the ratio of rules to features as one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from fraudstream.bench._rules import fifty_rules
from fraudstream.features import FeatureEngine, feature_names
from fraudstream.rules import RuleSet, Schema, batch_frame
from fraudstream.schema import ScoredBatch, TxBatch
from fraudstream.simulate import PaySimSimulator

WARM_ROWS = 40_000


def scored(tx: TxBatch, x: np.ndarray, names: tuple[str, ...]) -> ScoredBatch:
    col = {n: i for i, n in enumerate(names)}
    z = (
        -9.0
        + 0.4 * x[:, col["log_amount"]]
        + 2.0 * x[:, col["drains_balance"]]
        + 1.5 * x[:, col["new_counterparty_for_account"]]
    )
    score = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    decision = (score >= 0.5).astype(np.int8) + (score >= 0.9).astype(np.int8)
    n = len(tx)
    return ScoredBatch(
        tx=tx,
        feature_names=names,
        features=x,
        score=score,
        decision=decision,
        reasons=[[] for _ in range(n)],
        model_version="bench",
        partition=np.zeros(n, dtype=np.int32),
        offset=np.arange(n, dtype=np.int64),
        processed_at_ms=0,
    )


def main(batches: int, rows: int) -> dict[str, object]:
    history = PaySimSimulator(accounts=20_000, seed=3).history(WARM_ROWS + batches * rows)
    engine = FeatureEngine(mode="pre_auth")
    engine.warm_up()
    engine.update_and_extract(history.take(np.arange(WARM_ROWS)))
    names = feature_names("pre_auth")
    accounts = sorted(set(history.account))
    rng = np.random.default_rng(1)
    lists = {
        "mules": frozenset(rng.choice(accounts, 200, replace=False).tolist()),
        "trusted": frozenset(rng.choice(accounts, 300, replace=False).tolist()),
    }
    rules = RuleSet(fifty_rules(), Schema.for_mode("pre_auth"), lists=lists.keys())
    feat_ms, frame_ms, decide_ms, fired = [], [], [], []
    for b in range(batches):
        tx = history.take(np.arange(WARM_ROWS + b * rows, WARM_ROWS + (b + 1) * rows))
        t0 = time.perf_counter()
        x = engine.update_and_extract(tx)
        t1 = time.perf_counter()
        batch = scored(tx, x, names)
        t2 = time.perf_counter()
        frame = batch_frame(batch, rules.columns)
        t3 = time.perf_counter()
        decided = rules.decide(frame, batch.decision, lists)
        t4 = time.perf_counter()
        feat_ms.append((t1 - t0) * 1e3)
        frame_ms.append((t3 - t2) * 1e3)
        decide_ms.append((t4 - t3) * 1e3)
        fired.append(sum(1 for f in decided.fired if f))
    rules_ms = statistics.median(f + d for f, d in zip(frame_ms, decide_ms, strict=True))
    features_ms = statistics.median(feat_ms)
    return {
        "rules": len(rules.live),
        "rows_per_batch": rows,
        "batches": batches,
        "features_ms": round(features_ms, 2),
        "rule_columns_ms": round(statistics.median(frame_ms), 2),
        "decide_ms": round(statistics.median(decide_ms), 2),
        "rules_ms": round(rules_ms, 2),
        "rules_us_per_tx": round(rules_ms * 1e3 / rows, 3),
        "rules_to_features": round(rules_ms / features_ms, 3),
        "rows_with_a_rule_fired": round(statistics.median(fired) / rows, 4),
        "columns_read": len(rules.columns),
    }


if __name__ == "__main__":
    n_batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    n_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    sys.stdout.write(json.dumps(main(n_batches, n_rows)) + "\n")
