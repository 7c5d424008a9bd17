"""Canonical transactions, source formats, decoding and validation."""

from __future__ import annotations

from fraudstream.schema._canonical import (
    DECISIONS,
    KINDS,
    ScoredBatch,
    ShadowScores,
    TxBatch,
    WindowStats,
)
from fraudstream.schema._card import (
    CARD_COLUMNS,
    CardRecord,
    card_to_batch,
    decode_card,
    encode_card,
)
from fraudstream.schema._label_files import LABEL_FIELDS, LabelFile, read_labels
from fraudstream.schema._labels import (
    LABEL_SOURCES,
    PENDING_LABEL_TTL_MS,
    SOURCE_PRECEDENCE,
    VERDICTS,
    LabelMessage,
    LabelSource,
    decode_label,
    decode_labels,
    encode_label,
    label_from_status,
    label_id_of,
)
from fraudstream.schema._paysim import (
    Invalid,
    PaySimRecord,
    decode_paysim,
    encode_paysim,
    paysim_to_batch,
)

__all__ = [
    "CARD_COLUMNS",
    "CardRecord",
    "DECISIONS",
    "KINDS",
    "LABEL_FIELDS",
    "LABEL_SOURCES",
    "LabelFile",
    "LabelMessage",
    "LabelSource",
    "PENDING_LABEL_TTL_MS",
    "SOURCE_PRECEDENCE",
    "Invalid",
    "PaySimRecord",
    "ScoredBatch",
    "ShadowScores",
    "TxBatch",
    "VERDICTS",
    "WindowStats",
    "card_to_batch",
    "decode_card",
    "encode_card",
    "decode_label",
    "decode_labels",
    "decode_paysim",
    "encode_label",
    "encode_paysim",
    "label_from_status",
    "label_id_of",
    "paysim_to_batch",
    "read_labels",
]
