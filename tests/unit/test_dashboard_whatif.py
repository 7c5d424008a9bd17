"""The threshold explorer's arithmetic against hand-counted outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.dashboard import Labelled, sweep, what_if
from fraudstream.model._costs import Costs, Thresholds

SCORES = np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.1, 0.05, 0.01])
LABELS = np.array([1, 0, 1, 0, 1, 0, 0, 0], np.int8)
AMOUNTS = np.array([100.0, 10, 200, 10, 300, 10, 10, 10])
#: two days of event time
TIMES = np.linspace(0, 2 * 86_400_000, len(SCORES)).astype(np.int64)
ROWS = Labelled(SCORES, LABELS, AMOUNTS, TIMES)
COSTS = Costs(missed_fraud_share=1.0, review_cost=5.0, blocked_good_cost=50.0)


def test_what_if_counts_by_hand() -> None:
    r = what_if(ROWS, Thresholds(review=0.5, block=0.85), COSTS)
    # alerts: 0.9 (block, fraud), 0.8 (review, good), 0.6 (review, fraud)
    assert (r.alerts, r.blocked, r.frauds) == (3, 1, 3)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(2 / 3)
    assert r.alerts_per_day == pytest.approx(1.5)
    # missed fraud 300 + two reviews 10 + no good blocked
    assert r.cost == pytest.approx(310.0)
    assert r.cost_allow_all == pytest.approx(600.0)
    assert r.cost_per_day == pytest.approx(155.0)


def test_what_if_without_alerts_or_span() -> None:
    r = what_if(
        Labelled(SCORES[:1], LABELS[:1], AMOUNTS[:1], TIMES[:1]), Thresholds(0.95, 0.99), COSTS
    )
    assert r.precision is None and r.alerts_per_day is None and r.recall == 0.0


def test_sweep_moves_review_only_and_recall_never_falls_as_it_drops() -> None:
    curve = sweep(ROWS, block=0.85, costs=COSTS, points=20)
    assert curve and all(w.block == 0.85 for w in curve)
    assert all(w.review <= 0.85 for w in curve)
    reviews = [w.review for w in curve]
    assert reviews == sorted(reviews)
    recalls = [w.recall for w in curve]
    assert recalls == sorted(recalls, reverse=True)
    assert sweep(Labelled(SCORES[:0], LABELS[:0], AMOUNTS[:0], TIMES[:0]), 0.5, COSTS) == []
