"""Test-set metrics of one scorer: ranking quality, and outcomes at the cost thresholds."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.model._costs import Costs, Thresholds, decide, expected_cost

__all__ = ["evaluate"]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
_TOP_K = 100
_FPR = 0.01


def evaluate(
    scores: F64, label: npt.NDArray[np.int8], amount: F64, thresholds: Thresholds, costs: Costs
) -> dict[str, Any]:
    """Metrics of ``scores`` against ``label`` (1 fraud, 0 good); ``None`` where undefined."""
    y = label == 1
    both_classes = bool(y.any() and (~y).any())
    if not both_classes:
        log.warning("test set has a single class: ranking metrics are undefined")
    decision = decide(scores, thresholds)
    return {
        "average_precision": float(average_precision_score(y, scores)) if both_classes else None,
        "roc_auc": float(roc_auc_score(y, scores)) if both_classes else None,
        f"precision_at_{_TOP_K}": _precision_at_k(scores, y, _TOP_K),
        "recall_at_1pct_fpr": _recall_at_fpr(scores, y, _FPR) if both_classes else None,
        "review": _at_threshold(scores >= thresholds.review, y, thresholds.review),
        "block": _at_threshold(scores >= thresholds.block, y, thresholds.block),
        "alerts": int(np.count_nonzero(decision > 0)),
        "expected_cost": expected_cost(decision, label, amount, costs),
        "expected_cost_allow_all": expected_cost(
            np.zeros(len(scores), dtype=np.int8), label, amount, costs
        ),
    }


def _precision_at_k(scores: F64, y: npt.NDArray[np.bool_], k: int) -> float | None:
    """Share of fraud among the ``k`` highest scores (ties broken by position)."""
    if len(scores) == 0:
        return None
    top = np.argsort(-scores, kind="stable")[:k]
    return float(y[top].mean())


def _recall_at_fpr(scores: F64, y: npt.NDArray[np.bool_], fpr: float) -> float:
    """Recall when alerting on scores above the good transactions' ``1 - fpr`` quantile."""
    cut = float(np.quantile(scores[~y], 1.0 - fpr))
    return float(np.mean(scores[y] > cut))


def _at_threshold(
    flagged: npt.NDArray[np.bool_], y: npt.NDArray[np.bool_], threshold: float
) -> dict[str, Any]:
    """Precision and recall of ``score >= threshold`` (``None`` when undefined)."""
    hits = int(np.count_nonzero(flagged & y))
    n_flagged = int(np.count_nonzero(flagged))
    n_fraud = int(np.count_nonzero(y))
    return {
        "threshold": threshold,
        "flagged": n_flagged,
        "precision": hits / n_flagged if n_flagged else None,
        "recall": hits / n_fraud if n_fraud else None,
    }
