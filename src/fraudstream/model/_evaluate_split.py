"""Evaluation on a time split of the user's choosing: train before a date, test from another.

The history is replayed through the feature engine as ``train`` replays it; the rows whose
label is known by ``train_until_ms`` (event time + label delay) are cut in time into fit,
calibration (Platt scaling, cost thresholds) and validation (model selection) as ``train``
cuts its training period (:func:`~fraudstream.model._split.time_split`); both models are
measured on the rows from ``test_from_ms`` (:func:`~fraudstream.model._train.fit_and_evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fraudstream.errors import ModelError
from fraudstream.features import ExtraField
from fraudstream.model._bundle import Bundle
from fraudstream.model._costs import Costs
from fraudstream.model._metrics import evaluate
from fraudstream.model._score import check_extras
from fraudstream.model._split import check_frauds, time_split
from fraudstream.model._train import (
    MODES,
    Progress,
    bundle_feature_names,
    fit_and_evaluate,
    label_book,
    learn_extras,
    replay,
)
from fraudstream.schema import LabelMessage, TxBatch

__all__ = ["evaluate_bundles", "evaluate_time_split"]


def evaluate_time_split(
    history: TxBatch,
    *,
    mode: str,
    train_until_ms: int,
    test_from_ms: int,
    label_delay_ms: int,
    test_until_ms: int | None = None,
    labels: Sequence[LabelMessage] = (),
    costs: Costs = Costs(),  # noqa: B008 - frozen dataclass, immutable default
    seed: int = 0,
    partitions: int = 1,
    progress: Progress | None = None,
    extras: Sequence[ExtraField] = (),
) -> dict[str, Any]:
    """Both models trained on the rows known by ``train_until_ms``, measured from
    ``test_from_ms``: per model its test metrics (as ``train``'s bundle metrics), with
    ``selection`` (the model ``train`` would choose, on validation), ``data`` and ``quality``.

    ``history.label`` is the ground truth; ``labels`` feed the label features (each seen from
    its label time on). ``label_delay_ms`` decides which training rows are known (see
    :func:`time_split`) and is recorded as the split's gap. ``extras``: the declared extra
    fields used as inputs (card mode; vocabularies learned on the fit part, as ``train``).
    """
    if mode not in MODES:
        raise ModelError(f"unknown mode {mode!r}; expected one of {MODES}")
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    if test_until_ms is not None:  # later rows change no earlier row's features
        h = h.take(np.flatnonzero(h.event_time_ms < test_until_ms))
    split = time_split(
        h.event_time_ms,
        h.label,
        train_until_ms=train_until_ms,
        test_from_ms=test_from_ms,
        label_delay_ms=label_delay_ms,
        test_until_ms=test_until_ms,
    )
    check_frauds(h, split, refuse_few_frauds=False)
    spec = learn_extras(extras, h, split.fit)
    book = label_book(labels)
    x = replay(h, mode, progress, partitions=partitions, labels=book, extras=spec)
    names = (*bundle_feature_names(mode), *spec.feature_names)
    trained = fit_and_evaluate(
        x,
        h,
        split,
        names,
        seed=seed,
        costs=costs,
        gap_ms=label_delay_ms,
        categorical=spec.categorical_features,
    )
    metrics = trained.metrics
    metrics["data"]["state_partitions"] = partitions
    return metrics


def evaluate_bundles(
    bundles: Sequence[Bundle],
    history: TxBatch,
    *,
    test_from_ms: int,
    test_until_ms: int | None = None,
    labels: Sequence[LabelMessage] = (),
    costs: Costs = Costs(),  # noqa: B008 - frozen dataclass, immutable default
    partitions: int = 1,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Trained ``bundles`` (of one mode) measured on the rows from ``test_from_ms`` (before
    ``test_until_ms``), each at its own thresholds: per bundle, its test metrics and ``data``.

    Every earlier row is replayed too, once for all bundles, so the test rows' features are
    those the detector computes after the whole history (as :func:`score_history`).
    """
    modes = {b.mode for b in bundles}
    if len(modes) != 1:
        raise ModelError(f"bundles of one feature mode can be compared, got {sorted(modes)}")
    if any(b.extras != bundles[0].extras for b in bundles):
        raise ModelError("bundles reading other extra fields (or vocabularies) cannot be compared")
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    if test_until_ms is not None:
        h = h.take(np.flatnonzero(h.event_time_ms < test_until_ms))
    t = h.event_time_ms
    test = (h.label >= 0) & (t >= test_from_ms)
    if not test.any():
        raise ModelError(f"no labelled row at or after --test-from ({test_from_ms} ms)")
    check_extras(bundles[0], h)
    book = label_book(labels)
    mode, extras = modes.pop(), bundles[0].extras
    x = replay(h, mode, progress, partitions=partitions, labels=book, extras=extras)[test]
    idx = np.flatnonzero(test)
    data = {
        "test_rows": len(idx),
        "test_frauds": int(np.count_nonzero(h.label[test] == 1)),
        "test_start_ms": int(t[idx[0]]),
        "test_end_ms": int(t[idx[-1]]),
        "state_partitions": partitions,
    }
    label, amount = h.label[test], h.amount[test]
    return [
        {**evaluate(b.score(x), label, amount, b.thresholds, costs), "data": data} for b in bundles
    ]
