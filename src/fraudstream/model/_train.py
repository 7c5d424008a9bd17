"""Training: replay history through the feature engine, split in time, fit, select, evaluate.

The history, sorted by event time, is cut into four parts::

    fit | calibration | validation | gap (label delay, dropped) | test

Both models are fitted on *fit*; each gets a Platt calibration and cost thresholds on
*calibration*; the one with the lower expected cost on *validation* becomes the bundle's
scoring model (:mod:`fraudstream.model._select`); *test* only reports. A test part with fewer
than :data:`MIN_TEST_FRAUDS` frauds gives metrics that mean nothing: the bundle says so
(``metrics["quality"]``), and ``refuse_few_frauds=True`` refuses to train at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from fraudstream.errors import ModelError
from fraudstream.features import (
    CARD_FEATURES,
    CardExtras,
    ExtraField,
    LabelBook,
    Mode,
    engine_for,
    feature_names,
)
from fraudstream.model._bundle import Bundle, Platt
from fraudstream.model._costs import NEVER, Costs, Thresholds, choose_thresholds
from fraudstream.model._drift import build_reference
from fraudstream.model._linear import LinearScorer
from fraudstream.model._metrics import evaluate
from fraudstream.model._select import select_model
from fraudstream.model._split import (
    MIN_ROWS,
    MIN_TEST_FRAUDS,
    Split,
    check_frauds,
    data_summary,
    share_split,
)
from fraudstream.schema import LabelMessage, TxBatch

__all__ = [
    "MIN_ROWS",
    "MIN_TEST_FRAUDS",
    "MODES",
    "bundle_feature_names",
    "Trained",
    "data_fingerprint",
    "fit_and_evaluate",
    "label_book",
    "learn_extras",
    "refit_models",
    "refit_summary",
    "signed_log1p",
    "train_bundle",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

#: ``progress(done, total)``: rows replayed so far, of all.
Progress = Callable[[int, int], None]
#: Feature modes: PaySim before authorisation / after the transaction; card (handbook layout).
MODES: Final = ("pre_auth", "post_tx", "card")
#: Fewer validation frauds than this: the model selection is flagged as weakly supported.
MIN_VALIDATION_FRAUDS: Final = 10
_REPLAY_CHUNK: Final = 50_000
_ROUNDS: Final = 200


def train_bundle(
    history: TxBatch,
    *,
    mode: str = "pre_auth",
    costs: Costs = Costs(),  # noqa: B008 - frozen dataclass, immutable default
    seed: int = 0,
    test_fraction: float = 0.25,
    gap_ms: int = 3_600_000,
    progress: Progress | None = None,
    partitions: int = 1,
    refuse_few_frauds: bool = False,
    lightgbm_params: dict[str, Any] | None = None,
    labels: Sequence[LabelMessage] = (),
    refit: bool = False,
    extras: Sequence[ExtraField] = (),
) -> Bundle:
    """Train LightGBM and logistic regression on ``history``; the better one scores.

    ``labels``: the label records a detector would have read (``fraud-labels``); label features
    see, at each row's event time, exactly those known then. ``history.label`` is the target.

    History is sorted by event time and replayed through a fresh :class:`FeatureEngine`; the
    split is fit | calibration | validation | ``gap_ms`` (dropped, label delay) | test, the
    last ``test_fraction`` of rows. ``progress(done, total)`` is called after each replayed chunk.
    ``partitions``: the topic's partition count; the feature state is kept per partition as the
    detector keeps it (``FeatureEngine``), so training sees the features serving computes.
    ``refuse_few_frauds``: raise :class:`ModelError` (before any fitting) when the test part has
    fewer than :data:`MIN_TEST_FRAUDS` frauds; otherwise such a bundle is only marked.
    ``lightgbm_params`` override LightGBM's defaults. ``refit``: once validated and tested, both
    models are fitted again on every labelled row (:func:`refit_models`); the metrics stay those
    of the validated models, ``metrics["refit"]`` says on what the shipped models were fitted.
    ``extras``: the declared extra fields of ``history.extras`` to use as inputs (card mode;
    a categorical's vocabulary is learned on the fit part, see :func:`learn_extras`).
    """
    started = time.monotonic()
    names = _check_args(history, mode, test_fraction)
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    split = share_split(h, test_fraction, gap_ms)
    check_frauds(h, split, refuse_few_frauds)
    spec = learn_extras(extras, h, split.fit)
    names = (*names, *spec.feature_names)
    book = label_book(labels)
    x = replay(h, mode, progress, partitions=partitions, labels=book, extras=spec)
    trained = fit_and_evaluate(
        x,
        h,
        split,
        names,
        seed=seed,
        costs=costs,
        gap_ms=gap_ms,
        lightgbm_params=lightgbm_params,
        categorical=spec.categorical_features,
    )
    metrics, fitted = trained.metrics, trained.fitted
    metrics["data"]["state_partitions"] = partitions
    evaluation = trained.evaluation(x, h, split.test, costs)
    if refit:
        fitted = refit_models(fitted, x, h.label, names, spec.categorical_features)
        metrics["refit"] = refit_summary(h, fitted)
    metrics["train_seconds"] = round(time.monotonic() - started, 3)
    params = {"mode": mode, "seed": seed, "costs": asdict(costs), "test_fraction": test_fraction}
    if refit:  # a new parameter only where used: earlier bundles keep their version hashes
        params["refit"] = True
    if spec:  # a new parameter only where used, as refit
        params["extras"] = spec.as_dicts()
    bundle = _bundle(h, mode, names, trained.thresholds, metrics, fitted, params, gap_ms)
    bundle.extras = spec
    held_out = x[split.test]  # drift reference: the test part, the latest rows
    bundle.drift = build_reference(held_out, bundle.score(held_out), names)
    bundle.evaluation = evaluation
    return bundle


def _bundle(
    h: TxBatch,
    mode: str,
    names: tuple[str, ...],
    thresholds: dict[str, Thresholds],
    metrics: dict[str, Any],
    fitted: _Fitted,
    params: dict[str, Any],
    gap_ms: int,
) -> Bundle:
    """The bundle of ``fitted``, scoring with the model chosen on validation."""
    chosen = metrics["selection"]["chosen"]
    fingerprint = data_fingerprint(h)
    created = dt.datetime.now(dt.UTC)
    version = _version(created, fingerprint, params)
    log.info("trained bundle %s in %.1f s", version, metrics["train_seconds"])
    return Bundle(
        version=version,
        mode=mode,
        feature_names=names,
        thresholds=thresholds[chosen],
        metrics=metrics,
        booster=fitted.booster,
        calibrator=fitted.calibrators[chosen],
        baseline=fitted.baseline,
        scoring_model=chosen,
        info={
            "data_fingerprint": fingerprint,
            "created_at": created.isoformat(),
            "metrics_meaningful": metrics["quality"]["meaningful"],
            "training": {**params, "gap_ms": gap_ms, "lightgbm_params": fitted.params},
        },
    )


@dataclass(frozen=True)
class Trained:
    """Both models fitted on a split, their thresholds (from calibration) and metrics."""

    fitted: _Fitted
    thresholds: dict[str, Thresholds]
    #: per model its test metrics; ``selection`` (validation), ``data``, ``quality``, ``costs``
    metrics: dict[str, Any]

    def evaluation(self, x: F32, h: TxBatch, test: Mask, costs: Costs) -> dict[str, Any]:
        """The test part's arrays the report plots (``Bundle.evaluation``)."""
        return {
            "label": h.label[test],
            "amount": h.amount[test],
            "scores": {name: score(x[test]) for name, score in self.fitted.scorers().items()},
            "thresholds": self.thresholds,
            "costs": costs,
        }


def fit_and_evaluate(
    x: F32,
    h: TxBatch,
    split: Split,
    names: tuple[str, ...],
    *,
    seed: int,
    costs: Costs,
    gap_ms: int,
    lightgbm_params: dict[str, Any] | None = None,
    categorical: Sequence[str] = (),
) -> Trained:
    """Fit both models on ``split.fit``, calibrate and set thresholds on ``split.calibration``,
    choose the scoring model on ``split.validation``, measure both on ``split.test``.

    ``x`` are the features of the time-sorted ``h``; ``gap_ms`` is recorded with the split.
    ``categorical``: the features LightGBM reads as categories (codes; NaN missing).
    """
    params = lightgbm_params or {}
    fitted = _fit_models(x, h.label == 1, split, names, seed, params, categorical)
    thresholds, metrics = _evaluate_models(fitted, x, h, split, costs)
    metrics["data"] = data_summary(h, split, gap_ms)
    metrics["quality"] = _quality(metrics, thresholds[metrics["selection"]["chosen"]])
    metrics["costs"] = asdict(costs)
    return Trained(fitted, thresholds, metrics)


def refit_models(
    fitted: _Fitted,
    x: F32,
    label: npt.NDArray[np.int8],
    names: tuple[str, ...],
    categorical: Sequence[str] = (),
) -> _Fitted:
    """Both models fitted again on every labelled row, after validation.

    The validated configuration is kept as it is: LightGBM's parameters (its class weight
    included) and number of rounds, the baseline's pipeline. So are the Platt calibrators and
    with them the thresholds: they were fitted on the calibration part, which the validated
    models had not seen, so they map a margin on unseen rows to a probability. The refit models
    have seen every row, so no row is left to calibrate them honestly; keeping the calibration
    assumes their margins on new rows are distributed like the validated models' (the same
    configuration on more data). ``docs/results.md`` measures the refit against the default.
    """
    rows = label >= 0
    y = label[rows] == 1
    data = _dataset(x[rows], y, names, categorical)
    booster = lgb.train(fitted.params, data, num_boost_round=_ROUNDS)
    baseline = _fit_baseline(x[rows], y)
    linear = LinearScorer.from_pipeline(baseline)
    return _Fitted(booster, fitted.params, baseline, linear, fitted.calibrators)


def refit_summary(h: TxBatch, fitted: _Fitted) -> dict[str, Any]:
    """What the shipped models were refit on (``metrics["refit"]``)."""
    rows = h.label >= 0
    t = h.event_time_ms[rows]
    return {
        "rows": int(np.count_nonzero(rows)),
        "frauds": int(np.count_nonzero(h.label == 1)),
        "start_ms": int(t[0]),
        "end_ms": int(t[-1]),
        "rounds": _ROUNDS,
        "calibration": "kept from the validated models (fitted on the calibration part)",
    }


@dataclass(frozen=True)
class _Fitted:
    booster: lgb.Booster
    params: dict[str, Any]
    baseline: Pipeline
    linear: LinearScorer
    calibrators: dict[str, Platt]

    def margins(self) -> dict[str, Callable[[F32], F64]]:
        """Per model, its raw score (log-odds) of a batch, as the bundle computes it."""
        return {"lightgbm": lambda x: _margin(self.booster, x), "logreg": self.linear.margin}

    def scorers(self) -> dict[str, Callable[[F32], F64]]:
        """Per model, its calibrated probability of a batch."""
        return {
            name: _calibrated(margin, self.calibrators[name])
            for name, margin in self.margins().items()
        }


def _calibrated(margin: Callable[[F32], F64], calibrator: Platt) -> Callable[[F32], F64]:
    return lambda x: calibrator(margin(x))


def _dataset(x: F32, y: Mask, names: tuple[str, ...], categorical: Sequence[str]) -> lgb.Dataset:
    """LightGBM's data; ``categorical`` features (if any) as categories."""
    label = y.astype(np.float64)
    if not categorical:
        return lgb.Dataset(x, label=label, feature_name=list(names))
    cats = list(categorical)
    return lgb.Dataset(x, label=label, feature_name=list(names), categorical_feature=cats)


def _fit_models(
    x: F32,
    y: Mask,
    split: Split,
    names: tuple[str, ...],
    seed: int,
    overrides: dict[str, Any],
    categorical: Sequence[str] = (),
) -> _Fitted:
    """LightGBM and the baseline on the fit part; Platt scaling of each on the calibration part."""
    fit, cal = split.fit, split.calibration
    n_pos = int(np.count_nonzero(y[fit]))
    params = {**_lgb_params(n_pos, int(np.count_nonzero(fit)) - n_pos, seed), **overrides}
    data = _dataset(x[fit], y[fit], names, categorical)
    booster = lgb.train(params, data, num_boost_round=_ROUNDS)
    baseline = _fit_baseline(x[fit], y[fit])
    linear = LinearScorer.from_pipeline(baseline)
    calibrators = {
        "lightgbm": _fit_platt(_margin(booster, x[cal]), y[cal]),
        "logreg": _fit_platt(linear.margin(x[cal]), y[cal]),
    }
    return _Fitted(booster, params, baseline, linear, calibrators)


def _evaluate_models(
    fitted: _Fitted, x: F32, h: TxBatch, split: Split, costs: Costs
) -> tuple[dict[str, Thresholds], dict[str, Any]]:
    """Per model: thresholds on calibration, metrics on validation (selection) and on test."""
    chosen: dict[str, Thresholds] = {}
    validation: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    cal, val, test = split.calibration, split.validation, split.test
    for name, scorer in fitted.scorers().items():
        chosen[name] = choose_thresholds(scorer(x[cal]), h.label[cal], h.amount[cal], costs)
        validation[name] = evaluate(
            scorer(x[val]), h.label[val], h.amount[val], chosen[name], costs
        )
        metrics[name] = evaluate(
            scorer(x[test]), h.label[test], h.amount[test], chosen[name], costs
        )
    selection = select_model(validation, int(np.count_nonzero(h.label[val] == 1)))
    log.info("scoring model %s: %s", selection.chosen, selection.reason)
    metrics["selection"] = selection.as_dict()
    return chosen, metrics


def _quality(metrics: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """Whether the test metrics mean anything, and what a reader must be warned about."""
    data = metrics["data"]
    test_frauds, val_frauds = data["test_frauds"], data["validation_frauds"]
    warnings = []
    if test_frauds < MIN_TEST_FRAUDS:
        warnings.append(
            f"only {test_frauds} frauds in the test part (fewer than {MIN_TEST_FRAUDS}): "
            "the test metrics are not meaningful"
        )
    if val_frauds < MIN_VALIDATION_FRAUDS:
        warnings.append(
            f"only {val_frauds} frauds in the validation part: the choice of "
            f"{metrics['selection']['chosen']} rests on little evidence"
        )
    if thresholds.review == thresholds.block < NEVER:
        warnings.append(
            f"review and block thresholds are equal ({thresholds.review:.4g}): every alert is "
            "a block, none goes to review"
        )
    if thresholds.review >= NEVER:
        warnings.append("the scoring model never alerts at these costs (review threshold never)")
    return {
        "meaningful": test_frauds >= MIN_TEST_FRAUDS,
        "min_test_frauds": MIN_TEST_FRAUDS,
        "test_frauds": test_frauds,
        "validation_frauds": val_frauds,
        "warnings": warnings,
    }


def replay(
    history: TxBatch,
    mode: Mode | str,
    progress: Progress | None = None,
    *,
    partitions: int = 1,
    labels: LabelBook | None = None,
    extras: CardExtras | None = None,
) -> F32:
    """Features of every row of a time-sorted ``history``, through a fresh engine.

    ``mode="card"`` uses :class:`CardFeatureEngine` (customer = account, terminal = counterparty)
    reading the extra fields ``extras`` of ``history.extras``.
    ``labels``: every label, loaded up front (features only see those known at each row's time).
    """
    engine = engine_for(mode, partitions=partitions, labels=labels, extras=extras)
    n = len(history)
    parts = []
    for i in range(0, n, _REPLAY_CHUNK):
        hi = min(i + _REPLAY_CHUNK, n)
        parts.append(engine.update_and_extract(history.take(np.arange(i, hi))))
        if progress is not None:
            progress(hi, n)
    log.info("replayed %d rows in %s mode", n, mode)
    return np.concatenate(parts) if parts else np.empty((0, len(engine.feature_names)), np.float32)


def learn_extras(declared: Sequence[ExtraField], h: TxBatch, fit: Mask) -> CardExtras:
    """The extra fields ``declared`` as a bundle's inputs, categoricals with the vocabulary of
    the rows ``fit`` (a value first seen later is unseen, as it will be when serving)."""
    if not declared:
        return CardExtras()
    missing = [f.name for f in declared if f.name not in h.extras]
    if missing:
        raise ModelError(f"extra field(s) {', '.join(missing)} declared but not read from the data")
    rows = np.flatnonzero(fit).tolist()
    values = {f.name: [h.extras[f.name][i] for i in rows] for f in declared}
    return CardExtras.learn(declared, values)


def label_book(labels: Sequence[LabelMessage]) -> LabelBook:
    """A book of ``labels``; raises :class:`ModelError` if some cannot be placed (no account,
    counterparty or transaction time)."""
    book = LabelBook()
    result = book.add(labels)
    if result.unresolved:
        first = result.unresolved[0]
        raise ModelError(
            f"{len(result.unresolved)} label(s) lack the transaction's account, counterparty or "
            f"time (first: tx_id {first.tx_id!r}); give the labels file those columns or the "
            "transactions file they refer to"
        )
    log.info(
        "label book: %d label(s) applied, %d duplicate(s), %d contradicting",
        result.applied,
        result.duplicates,
        result.contradicting,
    )
    return book


def _check_args(history: TxBatch, mode: str, test_fraction: float) -> tuple[str, ...]:
    if mode not in MODES:
        raise ModelError(f"unknown mode {mode!r}; expected one of {MODES}")
    if not 0.0 < test_fraction < 1.0:
        raise ModelError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labelled = int(np.count_nonzero(history.label >= 0))
    if labelled < MIN_ROWS:
        raise ModelError(
            f"history has {labelled} labelled rows; training needs at least {MIN_ROWS}"
        )
    if not np.any(history.label == 1):
        raise ModelError(
            "history has no fraud (label 1): nothing to learn; simulate with fraud robots "
            "or supply labelled history"
        )
    return bundle_feature_names(mode)


def bundle_feature_names(mode: str) -> tuple[str, ...]:
    """Feature columns of a bundle trained in ``mode`` (``card``: the card engine's)."""
    return CARD_FEATURES if mode == "card" else feature_names(mode)  # type: ignore[arg-type]


def _lgb_params(n_pos: int, n_neg: int, seed: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        # Small trees: TreeSHAP reasons (pred_contrib) cost ~0.1 ms per alert at this size.
        "num_leaves": 15,
        "max_depth": 5,
        "min_data_in_leaf": 20,
        "min_sum_hessian_in_leaf": 1e-3,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        # Imbalance: a moderate up-weight of fraud; Platt scaling restores probabilities.
        "scale_pos_weight": round(math.sqrt(n_neg / max(n_pos, 1)), 4),
        "seed": seed,
        "num_threads": 2,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def _margin(booster: lgb.Booster, x: F32) -> F64:
    return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)


def _fit_platt(margin: F64, y: Mask) -> Platt:
    """Logistic fit of the label on the raw margin (weakly regularised)."""
    lr = LogisticRegression(C=1e4, max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    return Platt(slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))


def signed_log1p(x: F32) -> F32:
    """``sign(x)·log1p(|x|)``: tames heavy-tailed amounts for the linear baseline."""
    out: F32 = np.sign(x) * np.log1p(np.abs(x))
    return out


def _fit_baseline(x: F32, y: Mask) -> Pipeline:
    """StandardScaler + LogisticRegression (balanced classes) on signed-log features; a NaN
    feature is the mean."""
    pipe = Pipeline(
        [
            ("log", FunctionTransformer(signed_log1p)),
            ("scale", StandardScaler()),  # ignores NaN when fitting, keeps it
            # NaN (a missing extra field) counts as the mean, as LinearScorer scores it
            (
                "impute",
                SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
            ),
            ("logreg", LogisticRegression(max_iter=2000, class_weight="balanced")),
        ]
    )
    return pipe.fit(x, y)


def data_fingerprint(h: TxBatch) -> str:
    """SHA-256 of the history's content (ids, times, parties, kinds, amounts, balances, labels)."""
    digest = hashlib.sha256()
    for text in (h.tx_id, h.account, h.counterparty):
        digest.update("\x1f".join(text).encode())
        digest.update(b"\x1e")
    for arr in (
        h.event_time_ms,
        h.kind,
        h.amount,
        h.old_balance_orig,
        h.new_balance_orig,
        h.old_balance_dest,
        h.new_balance_dest,
        h.label,
    ):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def _version(created: dt.datetime, fingerprint: str, params: dict[str, Any]) -> str:
    """``20261123T071500Z-1a2b3c4d``: UTC second plus a hash of the data and training params."""
    short = hashlib.sha256((fingerprint + json.dumps(params, sort_keys=True)).encode()).hexdigest()[
        :8
    ]
    return f"{created:%Y%m%dT%H%M%SZ}-{short}"
