"""Entity state, sliding windows and feature extraction, shared by the detector and training.

Pure computation: no I/O. One :class:`FeatureEngine` replays history for training and follows the
live stream in the detector, so training and serving compute the very same features.
"""

from __future__ import annotations

from fraudstream.features._card import CARD_FEATURES, FDH_FEATURES, CardFeatureEngine
from fraudstream.features._card_extras import CardExtras, ExtraField
from fraudstream.features._engine import (
    LABEL_FEATURES,
    NEVER_S,
    POST_TX_FEATURES,
    PRE_AUTH_FEATURES,
    SECONDS_CAP_S,
    FeatureEngine,
    Mode,
    feature_names,
    partition_of,
)
from fraudstream.features._labelbook import AddResult, LabelBook
from fraudstream.features._labels import FEATURE_LABELS, FeatureLabel, feature_label
from fraudstream.features._state import RECENT_COUNTERPARTIES, WINDOW_MS

#: The state a detector keeps: PaySim's engine or the card format's (the same interface).
StateEngine = FeatureEngine | CardFeatureEngine


def engine_for(
    mode: str,
    *,
    partitions: int = 1,
    labels: LabelBook | None = None,
    extras: CardExtras | None = None,
) -> StateEngine:
    """A fresh feature state for a bundle trained in ``mode`` (``card`` or a PaySim mode),
    reading label features from ``labels`` (an empty book when ``None``) and, for the card
    format, the extra fields ``extras``."""
    if mode == "card":
        return CardFeatureEngine(partitions=partitions, labels=labels, extras=extras)
    if extras:
        raise ValueError(f"extra fields are model inputs of the card format only, not {mode}")
    return FeatureEngine(mode=mode, partitions=partitions, labels=labels)  # type: ignore[arg-type]


__all__ = [
    "AddResult",
    "CARD_FEATURES",
    "CardExtras",
    "ExtraField",
    "LABEL_FEATURES",
    "LabelBook",
    "FEATURE_LABELS",
    "FDH_FEATURES",
    "NEVER_S",
    "POST_TX_FEATURES",
    "PRE_AUTH_FEATURES",
    "RECENT_COUNTERPARTIES",
    "SECONDS_CAP_S",
    "WINDOW_MS",
    "CardFeatureEngine",
    "FeatureLabel",
    "FeatureEngine",
    "Mode",
    "StateEngine",
    "engine_for",
    "feature_label",
    "feature_names",
    "partition_of",
]
