"""Time-ordered splits of a history into fit | calibration | validation | test row masks.

Two ways to cut: :func:`share_split` (``train``: the last share of rows tests, after a gap) and
:func:`time_split` (``evaluate``: the user's dates and label delay). Either way the training
period is cut in time into fit, calibration (Platt scaling, thresholds) and validation (model
selection); unlabelled rows are in no part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraudstream.errors import ModelError
from fraudstream.schema import TxBatch

__all__ = [
    "CALIBRATION_FRACTION",
    "MIN_ROWS",
    "MIN_TEST_FRAUDS",
    "VALIDATION_FRACTION",
    "Split",
    "check_frauds",
    "data_summary",
    "share_split",
    "time_split",
]

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

#: Fewer labelled rows than this cannot give a meaningful time-ordered split.
MIN_ROWS: Final = 1000
#: Fewer test frauds than this: the test metrics are not meaningful (the bundle is marked so).
MIN_TEST_FRAUDS: Final = 30
#: Shares of the training period (in time) for calibration + thresholds, then validation.
CALIBRATION_FRACTION: Final = 0.15
VALIDATION_FRACTION: Final = 0.15


@dataclass(frozen=True)
class Split:
    """Row masks of the time-ordered split (unlabelled rows are in none of them)."""

    fit: Mask
    calibration: Mask
    validation: Mask
    test: Mask
    times_ms: dict[str, int]

    @property
    def train(self) -> Mask:
        """Every row the models may learn from: fit, calibration and validation."""
        out: Mask = self.fit | self.calibration | self.validation
        return out


def share_split(h: TxBatch, test_fraction: float, gap_ms: int) -> Split:
    """Fit | calibration | validation (the training period, in time), gap, test (the last rows)."""
    t = h.event_time_ms
    labelled = h.label >= 0
    test_start = int(t[min(len(t) - 1, int(len(t) * (1.0 - test_fraction)))])
    train = labelled & (t < test_start - gap_ms)
    test = labelled & (t >= test_start)
    if _count(train) < MIN_ROWS // 2:
        raise ModelError(
            f"only {_count(train):,} of {len(t):,} rows precede the test part minus the "
            f"{gap_ms / 1000:g} s gap (the history spans {(t[-1] - t[0]) / 1000:,.0f} s); "
            "supply a longer history or a smaller gap / test fraction"
        )
    return _cut_training(t, train, test, {"test_start_ms": test_start, "test_end_ms": int(t[-1])})


def time_split(
    t: I64,
    label: npt.NDArray[np.int8],
    *,
    train_until_ms: int,
    test_from_ms: int,
    label_delay_ms: int,
    test_until_ms: int | None = None,
) -> Split:
    """Train on rows whose label is known by ``train_until_ms``, test from ``test_from_ms``.

    A row's label is known ``label_delay_ms`` after its event time: a row younger than that at
    ``train_until_ms`` is not yet known to be genuine, so it is left out (a fraud alike: its
    label is not known yet either). Test rows are those at or after ``test_from_ms`` (and before
    ``test_until_ms`` if given). ``t`` must be sorted.
    """
    if label_delay_ms < 0:
        raise ModelError(f"the label delay must be >= 0, got {label_delay_ms} ms")
    if test_from_ms < train_until_ms:
        raise ModelError(
            f"the test period (from {test_from_ms} ms) starts before the training period ends "
            f"({train_until_ms} ms): the model would be tested on rows it learnt from"
        )
    labelled = label >= 0
    train = labelled & (t + label_delay_ms <= train_until_ms)
    test = labelled & (t >= test_from_ms)
    if test_until_ms is not None:
        test &= t < test_until_ms
    if _count(train) < MIN_ROWS // 2:
        raise ModelError(
            f"only {_count(train):,} rows have a label known by --train-until (event time + "
            f"{label_delay_ms / 86_400_000:g} days of label delay at most {train_until_ms} ms); "
            "choose a later --train-until or a shorter --label-delay"
        )
    if not test.any():
        raise ModelError(
            f"no labelled row at or after --test-from ({test_from_ms} ms); the data ends at "
            f"{int(t[-1])} ms"
        )
    idx = np.flatnonzero(test)
    ends = {"test_start_ms": int(t[idx[0]]), "test_end_ms": int(t[idx[-1]])}
    return _cut_training(t, train, test, ends)


def _cut_training(t: I64, train: Mask, test: Mask, test_times: dict[str, int]) -> Split:
    """The training rows cut in time into fit | calibration | validation."""
    train_idx = np.flatnonzero(train)

    def at(share: float) -> int:
        return int(t[train_idx[int(len(train_idx) * share)]])

    cal_start = at(1.0 - CALIBRATION_FRACTION - VALIDATION_FRACTION)
    val_start = at(1.0 - VALIDATION_FRACTION)
    return Split(
        fit=train & (t < cal_start),
        calibration=train & (t >= cal_start) & (t < val_start),
        validation=train & (t >= val_start),
        test=test,
        times_ms={
            "train_start_ms": int(t[train_idx[0]]),
            "calibration_start_ms": cal_start,
            "validation_start_ms": val_start,
            "train_end_ms": int(t[train_idx[-1]]),
            **test_times,
        },
    )


def check_frauds(h: TxBatch, split: Split, refuse_few_frauds: bool) -> None:
    """Every training part needs both classes; the test part, if asked, enough frauds."""
    y = h.label == 1
    frauds, rows = int(np.count_nonzero(y)), int(np.count_nonzero(h.label >= 0))
    test_frauds, test_rows = _count(split.test & y), _count(split.test)
    if refuse_few_frauds and test_frauds < MIN_TEST_FRAUDS:
        need = _rows_needed(rows, frauds, split.test, y, MIN_TEST_FRAUDS)
        raise ModelError(
            f"the test part has {test_frauds} frauds in {test_rows:,} rows (history: {frauds} "
            f"in {rows:,}); meaningful metrics need at least {MIN_TEST_FRAUDS}, which takes "
            f"about {need:,} rows of this history: supply more, or pass --allow-few-frauds "
            "to train a bundle marked as such"
        )
    for part in ("fit", "calibration"):
        mask: Mask = getattr(split, part)
        if not np.any(mask & y) or not np.any(mask & ~y):
            need = _rows_needed(rows, frauds, mask, y, 1)
            raise ModelError(
                f"the {part} part of the time-ordered split has {_count(mask & y)} frauds in "
                f"{_count(mask):,} rows (history: {frauds} in {rows:,}) and needs both fraud "
                f"and good rows: supply more history (about {need:,} rows)"
            )


def _count(mask: Mask) -> int:
    return int(np.count_nonzero(mask))


def _rows_needed(rows: int, frauds: int, part: Mask, y: Mask, target: int) -> int:
    """Rows of history for ``target`` frauds in ``part`` at its fraud rate (else the history's).

    An estimate: ``part`` keeps its share of the history, and its fraud rate stays.
    """
    part_rows, part_frauds = _count(part), _count(part & y)
    rate = part_frauds / part_rows if part_frauds and part_rows else max(frauds, 1) / rows
    share = max(part_rows, 1) / rows
    need = target / rate / share
    digits = 10 ** max(int(math.log10(need)) - 1, 0)
    return int(math.ceil(need / digits) * digits)


def data_summary(h: TxBatch, split: Split, gap_ms: int) -> dict[str, Any]:
    """Rows and frauds of every part, the gap and the parts' times (``metrics["data"]``)."""
    y = h.label == 1
    parts = {
        "train": split.train,
        "fit": split.fit,
        "calibration": split.calibration,
        "validation": split.validation,
        "test": split.test,
    }
    counts: dict[str, Any] = {"rows": len(h), "labelled_rows": _count(h.label >= 0)}
    for name, mask in parts.items():
        counts[f"{name}_rows"] = _count(mask)
        counts[f"{name}_frauds"] = _count(mask & y)
    return {**counts, "gap_ms": gap_ms, **split.times_ms}
