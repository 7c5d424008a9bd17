"""The threshold explorer's arithmetic: what review/block thresholds would have done (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraudstream.model._costs import Costs, Thresholds, decide, expected_cost

__all__ = ["Labelled", "WhatIf", "sweep", "what_if"]

F64 = npt.NDArray[np.float64]
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Labelled:
    """Scored transactions with known labels (1 fraud, 0 legitimate), column by column."""

    scores: F64
    labels: npt.NDArray[np.int8]
    amounts: F64
    times_ms: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class WhatIf:
    """Outcomes of one pair of thresholds on labelled rows."""

    review: float
    block: float
    rows: int
    frauds: int
    alerts: int
    blocked: int
    precision: float | None
    recall: float | None
    alerts_per_day: float | None
    cost: float
    cost_allow_all: float
    cost_per_day: float | None


def _span_days(times_ms: npt.NDArray[np.int64]) -> float | None:
    if len(times_ms) < 2:
        return None
    span = float(times_ms.max() - times_ms.min())
    return span / _DAY_MS if span > 0 else None


def what_if(rows: Labelled, thresholds: Thresholds, costs: Costs) -> WhatIf:
    """Precision, recall, alerts per day and expected cost of ``thresholds`` on these rows.

    An alert is review or block; precision and recall count alerts against ``labels == 1``.
    Per-day figures scale by the rows' event-time span (``None`` if it is empty).
    """
    scores, labels, amounts = rows.scores, rows.labels, rows.amounts
    decision = decide(scores, thresholds)
    fraud = labels == 1
    alerted = decision > 0
    hits = int(np.count_nonzero(alerted & fraud))
    n_alerts = int(np.count_nonzero(alerted))
    n_fraud = int(np.count_nonzero(fraud))
    cost = expected_cost(decision, labels, amounts, costs)
    days = _span_days(rows.times_ms)
    return WhatIf(
        review=thresholds.review,
        block=thresholds.block,
        rows=len(scores),
        frauds=n_fraud,
        alerts=n_alerts,
        blocked=int(np.count_nonzero(decision == 2)),
        precision=hits / n_alerts if n_alerts else None,
        recall=hits / n_fraud if n_fraud else None,
        alerts_per_day=n_alerts / days if days else None,
        cost=cost,
        cost_allow_all=expected_cost(np.zeros(len(scores), np.int8), labels, amounts, costs),
        cost_per_day=cost / days if days else None,
    )


def sweep(rows: Labelled, block: float, costs: Costs, points: int = 60) -> list[WhatIf]:
    """:func:`what_if` over review thresholds spread on the score quantiles (block fixed).

    A review threshold above ``block`` means block-only, so ``review`` is capped at ``block``.
    """
    if len(rows) == 0:
        return []
    qs = np.unique(np.quantile(rows.scores, np.linspace(0.5, 1.0, points)))
    grid = np.unique(np.minimum(np.concatenate([qs, [block]]), block))
    return [what_if(rows, Thresholds(float(r), block), costs) for r in grid]
