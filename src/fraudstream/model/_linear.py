"""The logistic baseline folded into one weight vector, for batched scoring without scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["LinearScorer"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinearScorer:
    """``margin = Σ w_j · (signed_log1p(x_j) − mean_j) / scale_j + bias`` over a batch.

    Built from the baseline pipeline (signed-log, ``StandardScaler``, ``LogisticRegression``):
    :meth:`margin` equals the pipeline's ``decision_function`` (to float rounding) in one
    matrix-vector product. A NaN feature counts as its training mean (contributes 0).
    """

    mean: F64
    scale: F64
    coef: F64
    bias: float

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> LinearScorer:
        """Read the fitted steps ``log`` → ``scale`` → ``logreg`` of the baseline pipeline."""
        scaler, logreg = pipeline.named_steps["scale"], pipeline.named_steps["logreg"]
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        return cls(
            mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.where(scale == 0.0, 1.0, scale),
            coef=np.asarray(logreg.coef_[0], dtype=np.float64),
            bias=float(logreg.intercept_[0]),
        )

    def standardised(self, X: F32) -> F64:
        """Each feature signed-log transformed and standardised as in training (NaN → 0)."""
        x = np.asarray(X, dtype=np.float64)
        z: F64 = (np.sign(x) * np.log1p(np.abs(x)) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)

    def margin(self, X: F32) -> F64:
        """The logistic regression's log-odds of each row."""
        out: F64 = self.standardised(X) @ self.coef + self.bias
        return out

    def contributions(self, X: F32) -> F64:
        """Per row and feature, ``coefficient × standardised value`` (log-odds)."""
        out: F64 = self.standardised(X) * self.coef
        return out
