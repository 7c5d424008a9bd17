"""Training, evaluation, cost thresholds, explanations and versioned model bundles.

``train_bundle`` replays history through the same :class:`~fraudstream.features.FeatureEngine` the
detector uses, fits LightGBM (champion) and logistic regression (baseline) on a time-ordered split,
calibrates, picks review/block thresholds from :class:`Costs` and returns a :class:`Bundle`.
"""

from __future__ import annotations

from fraudstream.model._bundle import Bundle, latest_bundle
from fraudstream.model._costs import Costs, Thresholds
from fraudstream.model._fdh import card_precision_at_k, fdh_features, load_fdh, run_ch3, run_ch5
from fraudstream.model._train import train_bundle

__all__ = [
    "Bundle",
    "Costs",
    "Thresholds",
    "card_precision_at_k",
    "fdh_features",
    "latest_bundle",
    "load_fdh",
    "run_ch3",
    "run_ch5",
    "train_bundle",
]
