"""Training, evaluation, cost thresholds, explanations and versioned model bundles.

``train_bundle`` replays history through the same :class:`~fraudstream.features.FeatureEngine` the
detector uses, fits LightGBM and logistic regression on a time-ordered split, keeps as the scoring
model the one with the lower expected cost on a validation part of the training period,
calibrates, picks review/block thresholds from :class:`Costs` and returns a :class:`Bundle`.
A saved bundle is a candidate until :func:`promote` puts it in service (:func:`latest_bundle`).
"""

from __future__ import annotations

from fraudstream.model._bundle import Bundle
from fraudstream.model._costs import Costs, Thresholds
from fraudstream.model._fdh import card_precision_at_k, fdh_features, load_fdh, run_ch3, run_ch5
from fraudstream.model._registry import (
    BundleEntry,
    latest_bundle,
    list_bundles,
    promote,
    promoted_version,
)
from fraudstream.model._train import MIN_TEST_FRAUDS, train_bundle

__all__ = [
    "MIN_TEST_FRAUDS",
    "Bundle",
    "BundleEntry",
    "Costs",
    "Thresholds",
    "card_precision_at_k",
    "fdh_features",
    "latest_bundle",
    "list_bundles",
    "load_fdh",
    "promote",
    "promoted_version",
    "run_ch3",
    "run_ch5",
    "train_bundle",
]
