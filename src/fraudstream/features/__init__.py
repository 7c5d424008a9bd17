"""Entity state, sliding windows and feature extraction, shared by the detector and training.

Pure computation: no I/O. One :class:`FeatureEngine` replays history for training and follows the
live stream in the detector, so training and serving compute the very same features.
"""

from __future__ import annotations

from fraudstream.features._card import CARD_FEATURES, FDH_FEATURES, CardFeatureEngine
from fraudstream.features._engine import (
    NEVER_S,
    POST_TX_FEATURES,
    PRE_AUTH_FEATURES,
    SECONDS_CAP_S,
    FeatureEngine,
    Mode,
    feature_names,
    partition_of,
)
from fraudstream.features._state import RECENT_COUNTERPARTIES, WINDOW_MS

__all__ = [
    "CARD_FEATURES",
    "FDH_FEATURES",
    "NEVER_S",
    "POST_TX_FEATURES",
    "PRE_AUTH_FEATURES",
    "RECENT_COUNTERPARTIES",
    "SECONDS_CAP_S",
    "WINDOW_MS",
    "CardFeatureEngine",
    "FeatureEngine",
    "Mode",
    "feature_names",
    "partition_of",
]
