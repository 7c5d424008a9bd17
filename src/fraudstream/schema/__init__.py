"""Canonical transactions, source formats, decoding and validation."""

from __future__ import annotations

from fraudstream.schema._canonical import DECISIONS, KINDS, ScoredBatch, TxBatch, WindowStats
from fraudstream.schema._paysim import (
    Invalid,
    PaySimRecord,
    decode_paysim,
    encode_paysim,
    paysim_to_batch,
)

__all__ = [
    "DECISIONS",
    "KINDS",
    "Invalid",
    "PaySimRecord",
    "ScoredBatch",
    "TxBatch",
    "WindowStats",
    "decode_paysim",
    "encode_paysim",
    "paysim_to_batch",
]
