"""The handbook's protocol pieces on tiny hand-made data."""

from __future__ import annotations

import numpy as np

from fraudstream.features import CARD_FEATURES
from fraudstream.model._fdh import FdhData, card_precision_at_k, train_test_split


def test_card_precision_ranks_cards_by_max_and_drops_detected_cards() -> None:
    score = np.array([0.9, 0.1, 0.8, 0.7, 0.95, 0.2])
    customer = np.array([1, 1, 2, 3, 1, 2])
    day = np.array([0, 0, 0, 0, 1, 1])
    label = np.array([0, 1, 0, 1, 1, 0], dtype=np.int8)
    # day 0: cards by max score 1 (fraud), 2 -> top 2 precision 1/2; card 1 detected, removed;
    # day 1: only card 2 (good) -> 0
    assert card_precision_at_k(score, customer, day, label, k=2) == 0.25


def test_split_removes_known_compromised_cards() -> None:
    day = np.array([0, 1, 2, 3, 3, 3], dtype=np.int64)
    customer = np.array([5, 6, 7, 5, 6, 7], dtype=np.int64)
    label = np.array([1, 0, 1, 0, 0, 0], dtype=np.int8)
    n = len(day)
    d = FdhData(
        customer=customer,
        day=day,
        time_ms=day * 86_400_000,
        label=label,
        x=np.zeros((n, len(CARD_FEATURES)), dtype=np.float32),
        names=CARD_FEATURES,
    )
    train, test = train_test_split(d, 0, delta_train=2, delta_delay=1, delta_test=1)
    assert train.tolist() == [0, 1]
    # card 5: fraud in train -> removed; card 7's fraud (day 2) is not yet known on day 3: the
    # handbook adds, for test day k, the frauds of day ``start + delta_train + k - 1`` only
    assert test.tolist() == [4, 5]
