"""Retraining with a gate: a challenger trained on recent labelled history, compared with the
champion on the latest labelled window, then promoted only on its shadow record.

Targets follow the label-delay convention (docs/labels.md): a row with a verdict takes it; a row
without one is genuine once it is older than the label delay (a fraud would have been reported by
then); a younger row without a verdict is **excluded** (``-1``), never taken as genuine. The
transaction's own fraud field is never read (the store's verdicts are the only labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from fraudstream.errors import ModelError
from fraudstream.model._bundle import Bundle
from fraudstream.model._costs import Costs
from fraudstream.model._evaluate_split import evaluate_bundles
from fraudstream.model._metrics import evaluate
from fraudstream.model._train import train_bundle
from fraudstream.schema import LabelMessage, TxBatch

__all__ = [
    "GateResult",
    "RetrainPolicy",
    "compare_on",
    "gate",
    "known_targets",
    "train_challenger",
]

_DAY_MS: Final = 86_400_000
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Decision = Literal["promote", "reject", "wait"]


@dataclass(frozen=True)
class RetrainPolicy:
    """How a challenger is trained and judged (all times in ms of event time)."""

    #: history read from the store before ``as_of``
    lookback_ms: int = 30 * _DAY_MS
    #: an unlabelled row younger than this is excluded, older is genuine (docs/labels.md)
    label_delay_ms: int = 7 * _DAY_MS
    #: the latest labelled window the challenger is compared on (not trained on), ending the
    #: label delay before now
    eval_window_ms: int = 2 * _DAY_MS
    #: the challenger's shadow AP must beat the champion's by at least this much
    margin: float = 0.01
    #: fewest fraud verdicts among the shadow rows before the gate decides
    min_fraud_labels: int = 30
    #: a challenger still short of fraud verdicts after this long in shadow is rejected
    max_shadow_ms: int = 14 * _DAY_MS
    seed: int = 0


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on a challenger's shadow period, with the figures behind it."""

    decision: Decision
    reason: str
    rows: int
    fraud_labels: int
    excluded: int
    champion: dict[str, Any]
    challenger: dict[str, Any]


def known_targets(label: I8, event_time_ms: I64, as_of_ms: int, label_delay_ms: int) -> I8:
    """Training/evaluation targets: the verdict (1/0) where one arrived; 0 for an unlabelled row
    at least ``label_delay_ms`` older than ``as_of_ms``; -1 (excluded) for a younger one."""
    mature = event_time_ms + label_delay_ms <= as_of_ms
    out = np.where(label >= 0, label, np.where(mature, 0, -1))
    return out.astype(np.int8)


def train_challenger(
    history: TxBatch,
    labels: Sequence[LabelMessage],
    champion: Bundle,
    policy: RetrainPolicy,
    as_of_ms: int,
) -> tuple[Bundle, dict[str, Any]]:
    """A challenger trained on ``history`` before the latest labelled window, and the comparison
    of champion and challenger on that window (``compare_on``): the ``eval_window_ms`` ending
    ``label_delay_ms`` before ``as_of_ms`` (its unlabelled rows are known genuine).

    ``history.label`` is the latest verdict per row (-1: none); rows are targeted by
    :func:`known_targets`. Excluded rows are still replayed (they are part of the accounts'
    history) but never fitted or measured.
    """
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    target = known_targets(h.label, h.event_time_ms, as_of_ms, policy.label_delay_ms)
    h = replace(h, label=target)
    eval_to_ms = as_of_ms - policy.label_delay_ms  # the latest rows whose targets are all known
    eval_from_ms = eval_to_ms - policy.eval_window_ms
    before = np.flatnonzero(h.event_time_ms < eval_from_ms)
    if not len(before):
        raise ModelError(
            f"no stored transaction before the evaluation window ({eval_from_ms} to {eval_to_ms} "
            "ms: the label delay and the window before the latest event); store a longer "
            "history or shorten --eval-window / --label-delay"
        )
    challenger = train_bundle(
        h.take(before), mode=champion.mode, seed=policy.seed, labels=labels, refit=True
    )
    comparison = compare_on(champion, challenger, h, labels, eval_from_ms, eval_to_ms)
    comparison["data"] = {
        "rows": len(h),
        "excluded_young_unlabelled": int(np.count_nonzero(target < 0)),
        "train_rows": int(np.count_nonzero(h.label[before] >= 0)),
        "train_fraud_labels": int(np.count_nonzero(h.label[before] == 1)),
        "eval_from_ms": eval_from_ms,
        "eval_to_ms": eval_to_ms,
        "as_of_ms": as_of_ms,
        **comparison["data"],
    }
    return challenger, comparison


def compare_on(
    champion: Bundle,
    challenger: Bundle,
    history: TxBatch,
    labels: Sequence[LabelMessage],
    from_ms: int,
    to_ms: int,
) -> dict[str, Any]:
    """AP and recall at the review threshold of both bundles on the labelled rows of
    ``history`` in ``[from_ms, to_ms)`` (``history.label``: targets, -1 excluded)."""
    t = history.event_time_ms
    if not np.any((history.label >= 0) & (t >= from_ms) & (t < to_ms)):
        raise ModelError(f"no labelled stored transaction from {from_ms} to {to_ms} ms")
    champ, chall = evaluate_bundles(
        [champion, challenger], history, test_from_ms=from_ms, test_until_ms=to_ms, labels=labels
    )
    return {
        "champion": _summary(champion.version, champ),
        "challenger": _summary(challenger.version, chall),
        "data": {
            "eval_rows": champ["data"]["test_rows"],
            "eval_fraud_labels": champ["data"]["test_frauds"],
        },
    }


def gate(
    scores: tuple[F64, F64],
    verdict: I8,
    event_time_ms: I64,
    amount: F64,
    bundles: tuple[Bundle, Bundle],
    policy: RetrainPolicy,
    *,
    as_of_ms: int,
    shadow_ms: int,
) -> GateResult:
    """Promote, reject or wait: ``scores`` = (champion's live, challenger's shadow) on the same
    rows, ``bundles`` = (champion, challenger), ``shadow_ms`` how long the challenger has been in
    shadow. Promote only with at least ``min_fraud_labels`` fraud verdicts and an AP ahead by
    ``margin``; too few verdicts waits, and past ``max_shadow_ms`` rejects."""
    target = known_targets(verdict, event_time_ms, as_of_ms, policy.label_delay_ms)
    kept = target >= 0
    y, frauds = target[kept], int(np.count_nonzero(target == 1))
    figures: list[dict[str, Any]] = [{}, {}]
    if frauds < policy.min_fraud_labels or frauds == int(np.count_nonzero(kept)):
        too_few = f"{frauds} fraud verdicts among {int(kept.sum()):,} shadow rows"
        if shadow_ms >= policy.max_shadow_ms:
            reason = f"{too_few} after {shadow_ms / _DAY_MS:.1f} days (the longest shadow period)"
            decision: Decision = "reject"
        else:
            reason = f"{too_few}, need {policy.min_fraud_labels}; keep shadowing"
            decision = "wait"
    else:
        for i, (score, bundle) in enumerate(zip(scores, bundles, strict=True)):
            m = evaluate(score[kept], y, amount[kept], bundle.thresholds, Costs())
            figures[i] = _summary(bundle.version, {**m, "data": {}})
        lead = figures[1]["average_precision"] - figures[0]["average_precision"]
        ahead = f"AP {figures[1]['average_precision']:.4f} vs {figures[0]['average_precision']:.4f}"
        if lead >= policy.margin:
            decision, reason = "promote", f"{ahead}: ahead by {lead:+.4f} >= {policy.margin}"
        else:
            decision, reason = "reject", f"{ahead}: {lead:+.4f} is below the margin {policy.margin}"
    return GateResult(
        decision,
        reason,
        int(kept.sum()),
        frauds,
        int(np.count_nonzero(~kept)),
        figures[0],
        figures[1],
    )


def _summary(version: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures a retrain step records for one bundle."""
    ap = metrics.get("average_precision")
    return {
        "version": version,
        "average_precision": 0.0 if ap is None else float(ap),
        "recall_at_review": metrics["review"]["recall"],
        "review_threshold": metrics["review"]["threshold"],
        "alerts": metrics["alerts"],
    }
