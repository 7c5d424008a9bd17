"""Which model scores: the one with the lower expected cost on the validation part.

Both models are fitted on the fit part, calibrated and thresholded on the calibration part,
then scored on the validation part (the last share of the training period, in time order,
before the gap and the test part). The lower expected cost at each model's own thresholds
wins. Costs within ``TIE_SHARE`` of each other are a tie, broken by the higher average
precision; a validation part without any fraud cannot rank them, and LightGBM is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["TIE_SHARE", "Selection", "select_model"]

#: Expected costs closer than this share of the larger one are a tie.
TIE_SHARE: Final = 0.001
_DEFAULT: Final = "lightgbm"


@dataclass(frozen=True)
class Selection:
    """The chosen model, the criterion that decided, a sentence saying why, the evidence."""

    chosen: str
    criterion: str  # expected_cost | average_precision | default
    reason: str
    validation: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "criterion": self.criterion,
            "reason": self.reason,
            "tie_share": TIE_SHARE,
            "validation": self.validation,
        }


def select_model(validation: dict[str, dict[str, Any]], frauds: int) -> Selection:
    """Pick from ``validation`` (model → :func:`evaluate` metrics on the validation part).

    ``frauds``: fraud rows in the validation part.
    """
    names = sorted(validation, key=lambda n: n != _DEFAULT)  # the default first
    if frauds == 0:
        return Selection(
            _DEFAULT, "default", "the validation part has no fraud: LightGBM kept", validation
        )
    cost = {n: float(validation[n]["expected_cost"]) for n in names}
    best = min(names, key=lambda n: cost[n])
    other = next(n for n in names if n != best)
    if cost[other] - cost[best] > TIE_SHARE * max(cost.values()):
        return Selection(
            best,
            "expected_cost",
            f"lower expected cost on validation: {best} {cost[best]:,.0f} vs "
            f"{other} {cost[other]:,.0f} ({frauds} validation frauds)",
            validation,
        )
    ap: dict[str, float | None] = {n: validation[n].get("average_precision") for n in names}
    ranked = sorted(names, key=lambda n: -_or(ap[n], -1.0))
    best, other = ranked[0], ranked[1]
    return Selection(
        best,
        "average_precision",
        f"expected costs tie on validation ({cost[best]:,.0f} vs {cost[other]:,.0f}); "
        f"higher average precision: {best} {_fmt(ap[best])} vs {other} {_fmt(ap[other])}",
        validation,
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
