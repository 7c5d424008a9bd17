"""Decision costs and the review / block thresholds that minimise them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Costs", "Thresholds", "choose_thresholds", "decide", "expected_cost"]

F64 = npt.NDArray[np.float64]
#: A threshold no calibrated probability reaches: the decision is never taken.
NEVER = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class Costs:
    """What each outcome costs, in the amount's currency.

    A missed (allowed) fraud loses ``missed_fraud_share`` of its amount; every review costs
    ``review_cost`` (and stops the fraud); blocking a good transaction costs ``blocked_good_cost``.
    ``max_alert_share`` is the analysts' capacity: at most that share of transactions is reviewed
    or blocked, whatever the costs say (with large amounts, cost alone would review nearly all).
    """

    missed_fraud_share: float = 1.0
    review_cost: float = 5.0
    blocked_good_cost: float = 50.0
    max_alert_share: float = 0.01


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds: review when ``score >= review``, block when ``score >= block``."""

    review: float
    block: float


def decide(scores: npt.ArrayLike, thresholds: Thresholds) -> npt.NDArray[np.int8]:
    """0 allow, 1 review, 2 block, vectorised."""
    s = np.asarray(scores, dtype=np.float64)
    return (s >= thresholds.review).astype(np.int8) + (s >= thresholds.block).astype(np.int8)


def expected_cost(
    decision: npt.NDArray[np.int8], label: npt.ArrayLike, amount: F64, costs: Costs
) -> float:
    """Total cost of ``decision`` given the true labels."""
    fraud = np.asarray(label) == 1
    missed = float(amount[fraud & (decision == 0)].sum()) * costs.missed_fraud_share
    reviews = float(np.count_nonzero(decision == 1)) * costs.review_cost
    blocked_good = float(np.count_nonzero(~fraud & (decision == 2))) * costs.blocked_good_cost
    return missed + reviews + blocked_good


def choose_thresholds(scores: F64, label: npt.ArrayLike, amount: F64, costs: Costs) -> Thresholds:
    """The review ≤ block pair that minimises :func:`expected_cost` on these rows.

    At most ``costs.max_alert_share`` of the rows may be reviewed or blocked (review capacity).

    Exact search over every cut between distinct scores, in O(n log n): with the rows sorted by
    descending score, blocking the top ``kb`` and reviewing the top ``kr`` (``kb ≤ kr``) costs
    ``g(kb) + h(kr)`` plus a constant, so a prefix minimum of ``g`` gives the best pair.
    """
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fraud = (np.asarray(label)[order] == 1).astype(np.float64)
    cum_good = np.concatenate([[0.0], np.cumsum(1.0 - fraud)])
    cum_fraud_amount = np.concatenate([[0.0], np.cumsum(fraud * amount[order])])
    k = np.arange(len(s) + 1, dtype=np.float64)
    # A cut after position k-1 is valid only between distinct scores (ties decide alike).
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[:-1] > s[1:]
    g = np.where(valid, costs.blocked_good_cost * cum_good - costs.review_cost * k, np.inf)
    h = np.where(valid, costs.review_cost * k - costs.missed_fraud_share * cum_fraud_amount, np.inf)
    h[int(costs.max_alert_share * len(s)) + 1 :] = np.inf  # review capacity
    best_g = np.minimum.accumulate(g)
    kb_best = _argmin_prefix(g)
    kr = int(np.argmin(best_g + h))
    kb = int(kb_best[kr])
    return Thresholds(review=_cut_value(s, kr), block=_cut_value(s, kb))


def _argmin_prefix(values: F64) -> npt.NDArray[np.intp]:
    """For each ``i``, the index of the first minimum of ``values[: i + 1]``."""
    idx = np.arange(len(values))
    is_new_min = np.concatenate([[True], values[1:] < np.minimum.accumulate(values)[:-1]])
    return np.maximum.accumulate(np.where(is_new_min, idx, 0))


def _cut_value(sorted_desc: F64, k: int) -> float:
    """The threshold that selects exactly the top ``k`` of ``sorted_desc``."""
    if k == 0:
        return NEVER
    if k == len(sorted_desc):
        return 0.0
    lowest_in, highest_out = float(sorted_desc[k - 1]), float(sorted_desc[k])
    mid = (lowest_in + highest_out) / 2.0
    return mid if highest_out < mid <= lowest_in else lowest_in
