"""Model bundles: a versioned directory with the scoring model, its calibration and thresholds.

A bundle holds both models trained on the same split, LightGBM and the logistic baseline;
``scoring_model`` (recorded in ``bundle.json``, chosen on the validation part by
:func:`~fraudstream.model._select.select_model`) says which one scores, decides and explains.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import joblib
import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from fraudstream.errors import ModelError
from fraudstream.features import CARD_FEATURES, CardExtras
from fraudstream.features import feature_names as engine_feature_names
from fraudstream.model._costs import Thresholds, decide
from fraudstream.model._drift import DriftReference
from fraudstream.model._linear import LinearScorer
from fraudstream.model._shap import CompiledShap
from fraudstream.model._trees import CompiledTrees

__all__ = ["BUNDLE_FILE", "SCORING_MODELS", "Bundle", "Platt"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

BUNDLE_FILE: Final = "bundle.json"
_BOOSTER_FILE: Final = "lgbm.txt"
_BASELINE_FILE: Final = "logreg.joblib"
_CALIBRATOR_FILE: Final = "calibrator.json"
_FORMAT: Final = 1
#: The models a bundle can score with (``bundle.json``'s ``scoring_model``; absent: LightGBM).
SCORING_MODELS: Final = ("lightgbm", "logreg")

#: The reasons of an allow row: none (shared by all such rows, never changed).
_NO_REASONS: Final[list[tuple[str, float, float]]] = []


@dataclass(frozen=True)
class Platt:
    """Platt scaling of a raw margin: ``p = 1 / (1 + exp(-(slope·m + intercept)))``."""

    slope: float
    intercept: float

    def __call__(self, margin: F64) -> F64:
        z = np.clip(self.slope * margin + self.intercept, -500.0, 500.0)
        out: F64 = 1.0 / (1.0 + np.exp(-z))
        return out


class Bundle:
    """LightGBM and the logistic baseline, one of them scoring, with calibration and thresholds.

    ``score`` makes one model call per batch (compiled trees for LightGBM, one matrix-vector
    product for the baseline); ``decide`` and ``explain`` are vectorised. ``calibrator`` and
    ``thresholds`` belong to ``scoring_model``.
    """

    def __init__(
        self,
        *,
        version: str,
        mode: str,
        feature_names: tuple[str, ...],
        thresholds: Thresholds,
        metrics: dict[str, Any],
        booster: lgb.Booster,
        calibrator: Platt,
        baseline: Any | None = None,
        info: dict[str, Any] | None = None,
        path: Path | None = None,
        scoring_model: str = "lightgbm",
        drift: DriftReference | None = None,
        extras: CardExtras | None = None,
    ) -> None:
        if scoring_model not in SCORING_MODELS:
            raise ModelError(f"unknown scoring model {scoring_model!r}; expected {SCORING_MODELS}")
        if scoring_model == "logreg" and baseline is None:
            raise ModelError(f"bundle {version} scores with the baseline but has none")
        self.version = version
        self.mode = mode
        self.feature_names = feature_names
        self.thresholds = thresholds
        self.metrics = metrics
        self.booster = booster
        self.calibrator = calibrator
        self.baseline = baseline
        self.info: dict[str, Any] = info or {}
        self.path = path
        self.scoring_model = scoring_model
        #: Histograms of the training rows for drift monitoring (``None``: not monitored).
        self.drift = drift
        #: The extra fields the card features read (none: the card features alone).
        self.extras = extras if extras is not None else CardExtras()
        #: The baseline as one weight vector (batched scoring), ``None`` without a baseline.
        self.linear = None if baseline is None else LinearScorer.from_pipeline(baseline)
        #: Test-set arrays of a freshly trained bundle, for :func:`write_report` (never saved).
        self.evaluation: dict[str, Any] | None = None
        #: The booster's trees for the compiled scorer (same raw scores, ~5x faster), or ``None``
        #: for a model it cannot compile, which ``booster.predict`` then scores.
        self.trees: CompiledTrees | None = None
        #: Its SHAP values per leaf and path (reason codes ~10x faster than LightGBM's), or
        #: ``None`` for trees too deep to tabulate, which ``pred_contrib`` then explains.
        self.shap: CompiledShap | None = None
        if scoring_model != "lightgbm":
            return
        dump = booster.dump_model()
        try:
            self.trees = CompiledTrees.from_model(dump)
        except ValueError as exc:  # the refusal's reason
            log.info("bundle %s is scored by LightGBM itself: %s", version, exc)
            return
        try:
            self.shap = CompiledShap.from_model(dump, self.trees)
        except ValueError as exc:
            log.info("bundle %s is explained by LightGBM itself: %s", version, exc)

    def __repr__(self) -> str:
        return (
            f"Bundle(version={self.version!r}, mode={self.mode!r}, "
            f"scoring_model={self.scoring_model!r}, path={self.path!r})"
        )

    def _check(self, x: F32) -> None:
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ModelError(
                f"bundle {self.version} expects features of shape (n, {len(self.feature_names)}), "
                f"got {x.shape}; build them with FeatureEngine(mode={self.mode!r})"
            )

    def score(self, X: F32) -> F64:
        """Calibrated fraud probability of each row by ``scoring_model`` (one batched call)."""
        self._check(X)
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        return self.calibrator(self.margin(X))

    def margin(self, X: F32) -> F64:
        """The scoring model's raw score of each row (log-odds before calibration)."""
        if self.scoring_model == "logreg":
            assert self.linear is not None  # checked in __init__
            return self.linear.margin(X)
        if self.trees is not None:
            return self.trees.raw_score(X)
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=1), dtype=np.float64)

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the scoring kernel before the first batch."""
        self.score(np.zeros((1, len(self.feature_names)), dtype=np.float32))

    def score_baseline(self, X: F32) -> F64:
        """The logistic-regression baseline's fraud probability (e.g. for shadow comparison)."""
        self._check(X)
        if self.baseline is None:
            raise ModelError(f"bundle {self.version} has no baseline model")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.baseline.predict_proba(X)[:, 1], dtype=np.float64)

    def decide(self, scores: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """0 allow, 1 review, 2 block, from the bundle's thresholds."""
        return decide(scores, self.thresholds)

    def explain(self, X: F32, top: int = 3) -> list[list[tuple[str, float, float]]]:
        """Per row, the ``top`` features that pushed the score up most.

        Each reason is ``(feature_name, feature_value, contribution)``; contributions are in
        log-odds of the uncalibrated scoring model, largest first: LightGBM's SHAP values, or
        the baseline's coefficient × standardised value (:meth:`explain_baseline`).
        """
        if self.scoring_model == "logreg":
            return self.explain_baseline(X, top)
        self._check(X)
        if len(X) == 0:
            return []
        contrib = (
            self.shap.contributions(X)
            if self.shap is not None
            else np.asarray(
                self.booster.predict(X, pred_contrib=True, num_threads=1), dtype=np.float64
            )
        )
        return _top_reasons(self.feature_names, X, contrib[:, : len(self.feature_names)], top)

    def explain_alerts(
        self, X: F32, decision: npt.NDArray[np.int8], top: int = 3
    ) -> list[list[tuple[str, float, float]]]:
        """Per row, its reason codes: :meth:`explain` for review/block rows, none for allow.

        Every allow row shares one empty list (never to be changed): a new list per row was
        20,000 objects a batch for the cycle collector, most of this call's time.
        """
        reasons: list[list[tuple[str, float, float]]] = [_NO_REASONS] * len(decision)
        idx = np.flatnonzero(decision > 0)
        if len(idx):
            for i, why in zip(idx.tolist(), self.explain(X[idx], top), strict=True):
                reasons[i] = why
        return reasons

    def explain_baseline(self, X: F32, top: int = 3) -> list[list[tuple[str, float, float]]]:
        """Like :meth:`explain` for the logistic baseline: contribution = coefficient ×
        standardised (signed-log) value, in log-odds, largest first."""
        self._check(X)
        if self.linear is None:
            raise ModelError(f"bundle {self.version} has no baseline model")
        if len(X) == 0:
            return []
        return _top_reasons(self.feature_names, X, self.linear.contributions(X), top)

    def save(self, models_dir: Path) -> Path:
        """Write ``models_dir/<version>/`` atomically (temp dir + rename) and return it."""
        final = Path(models_dir) / self.version
        if final.exists():
            raise ModelError(f"bundle {final} already exists; versions are never overwritten")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.version}.", dir=final.parent))
        try:
            self.booster.save_model(str(tmp / _BOOSTER_FILE))
            (tmp / _CALIBRATOR_FILE).write_text(
                json.dumps({"method": "platt", **asdict(self.calibrator)}, indent=2)
            )
            if self.baseline is not None:
                joblib.dump(self.baseline, tmp / _BASELINE_FILE)
            if self.drift is not None:
                self.drift.save(tmp)
            (tmp / BUNDLE_FILE).write_text(json.dumps(self._manifest(), indent=2, default=str))
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = final
        log.info("saved model bundle %s to %s", self.version, final)
        return final

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version,
            "mode": self.mode,
            "scoring_model": self.scoring_model,
            "feature_names": list(self.feature_names),
            "thresholds": asdict(self.thresholds),
            "metrics": self.metrics,
            **({"extras": self.extras.as_dicts()} if self.extras else {}),
            **self.info,
        }

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """Read a bundle directory written by :meth:`save`."""
        path = Path(path)
        manifest = _read_manifest(path)
        try:
            booster = lgb.Booster(model_file=str(path / _BOOSTER_FILE))
            cal = json.loads((path / _CALIBRATOR_FILE).read_text())
            calibrator = Platt(slope=float(cal["slope"]), intercept=float(cal["intercept"]))
            baseline_file = path / _BASELINE_FILE
            baseline = joblib.load(baseline_file) if baseline_file.exists() else None
        except (OSError, KeyError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ModelError(f"bundle {path} is incomplete or corrupt: {exc}") from exc
        names = tuple(manifest["feature_names"])
        drift = _drift_reference(path)
        extras = CardExtras.from_dicts(manifest.get("extras", []))
        _check_feature_spec(path, manifest["mode"], names, booster, extras)
        known = {"format", "version", "mode", "feature_names", "thresholds", "metrics", "extras"}
        known.add("scoring_model")
        return cls(
            version=manifest["version"],
            mode=manifest["mode"],
            feature_names=names,
            thresholds=Thresholds(**manifest["thresholds"]),
            metrics=manifest["metrics"],
            booster=booster,
            calibrator=calibrator,
            baseline=baseline,
            info={k: v for k, v in manifest.items() if k not in known},
            path=path,
            scoring_model=manifest.get("scoring_model", "lightgbm"),
            drift=drift,
            extras=extras,
        )


def _drift_reference(path: Path) -> DriftReference | None:
    """The bundle's drift reference; ``None`` (with a warning) if its file is unreadable."""
    try:
        return DriftReference.load(path)
    except ModelError as exc:
        log.warning("%s; this bundle is served without drift monitoring", exc)
        return None


def _top_reasons(
    names: tuple[str, ...], X: F32, contrib: F64, top: int
) -> list[list[tuple[str, float, float]]]:
    """Per row, ``(name, value, contribution)`` of the ``top`` largest contributions.

    The reasons are built from flat lists (one ``tolist`` per field, then sliced): nested
    ``tolist`` calls and a comprehension per row cost 3.6× as much on a batch's alerts."""
    k = min(top, len(names))
    if k <= 0:
        return [[] for _ in range(len(X))]
    best = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    flat = list(
        zip(
            np.asarray(names, dtype=object)[best].ravel().tolist(),
            np.take_along_axis(X, best, axis=1).ravel().tolist(),
            np.take_along_axis(contrib, best, axis=1).ravel().tolist(),
            strict=True,
        )
    )
    return [flat[i : i + k] for i in range(0, len(flat), k)]


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / BUNDLE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / BUNDLE_FILE}: {exc}; is {path} a bundle?") from exc
    if manifest.get("format") != _FORMAT:
        raise ModelError(
            f"bundle {path} has format {manifest.get('format')!r}, this version reads {_FORMAT}"
        )
    return manifest


def _check_feature_spec(
    path: Path, mode: str, names: tuple[str, ...], booster: lgb.Booster, extras: CardExtras
) -> None:
    """The bundle must match the feature engine of this code version (no train/serve skew)."""
    try:
        expected = (
            (*CARD_FEATURES, *extras.feature_names)
            if mode == "card"
            else engine_feature_names(mode)  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise ModelError(f"bundle {path}: {exc}") from exc
    if names != expected or booster.num_feature() != len(names):
        raise ModelError(
            f"bundle {path} was trained on features {names} but this code's {mode} engine "
            f"computes {expected}; retrain with `fraudstream train`"
        )
