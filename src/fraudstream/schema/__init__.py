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
    EXTRA_TYPES,
    CardRecord,
    card_to_batch,
    decode_card,
    encode_card,
    typed_card_decoder,
)
from fraudstream.schema._cc_layout import CREDIT_CARD_COLUMNS, credit_card_layout
from fraudstream.schema._declare import FieldSpec, SchemaDeclaration, declare, load_schema
from fraudstream.schema._files import TransactionFile, read_transactions
from fraudstream.schema._infer import Proposal, infer_schema
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
    "CREDIT_CARD_COLUMNS",
    "CardRecord",
    "DECISIONS",
    "EXTRA_TYPES",
    "FieldSpec",
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
    "Proposal",
    "SchemaDeclaration",
    "ScoredBatch",
    "ShadowScores",
    "TransactionFile",
    "TxBatch",
    "VERDICTS",
    "WindowStats",
    "card_to_batch",
    "credit_card_layout",
    "declare",
    "decode_card",
    "encode_card",
    "decode_label",
    "decode_labels",
    "decode_paysim",
    "encode_label",
    "encode_paysim",
    "infer_schema",
    "label_from_status",
    "label_id_of",
    "load_schema",
    "paysim_to_batch",
    "read_labels",
    "read_transactions",
    "typed_card_decoder",
]
