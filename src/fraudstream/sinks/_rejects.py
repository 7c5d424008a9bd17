"""Rows a store did not keep: a conflicting duplicate id, or a value the store refuses.

The sink worker sends them to the dead-letter topic. The original Kafka message is gone by then,
so the dead letter carries the canonical transaction as JSON (ASCII, every character escaped, so
a NUL or a lone surrogate survives) and its source partition and offset.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

from fraudstream.schema import KINDS, ScoredBatch

__all__ = ["CONTENT_COLUMNS", "RejectedRow", "content", "conflict_reason", "rejected_row"]

#: The columns of a transaction's content: a stored row with the same ``tx_id`` and other
#: values here is a conflicting duplicate (scores, features and offsets may differ on a replay).
CONTENT_COLUMNS: Final = (
    "event_time_ms",
    "account",
    "counterparty",
    "kind",
    "amount",
    "old_balance_orig",
    "new_balance_orig",
    "old_balance_dest",
    "new_balance_dest",
    "label",
    "step",
)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A transaction the store did not keep, why, and what to dead-letter."""

    tx_id: str
    partition: int
    offset: int
    reason: str
    key: bytes
    value: bytes


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value


def content(batch: ScoredBatch, i: int) -> tuple[Any, ...]:
    """Row ``i``'s values of :data:`CONTENT_COLUMNS` as a store returns them (NaN and an
    unknown label as ``None``)."""
    tx = batch.tx
    label = int(tx.label[i])
    return (
        int(tx.event_time_ms[i]),
        tx.account[i],
        tx.counterparty[i],
        KINDS[int(tx.kind[i])],
        float(tx.amount[i]),
        _nullable(float(tx.old_balance_orig[i])),
        _nullable(float(tx.new_balance_orig[i])),
        _nullable(float(tx.old_balance_dest[i])),
        _nullable(float(tx.new_balance_dest[i])),
        None if label < 0 else label,
        int(tx.step[i]),
    )


def conflict_reason(tx_id: str, stored_partition: int, stored_offset: int) -> str:
    """The dead-letter reason of a conflicting duplicate."""
    return (
        f"txId {tx_id!r} already stored with different content (stored from partition "
        f"{stored_partition} offset {stored_offset}); this record was not stored: give each "
        "transaction its own txId"
    )


def rejected_row(batch: ScoredBatch, i: int, reason: str) -> RejectedRow:
    """Row ``i`` of ``batch`` as a dead letter with ``reason``."""
    values = dict(zip(CONTENT_COLUMNS, content(batch, i), strict=True))
    document = {"txId": batch.tx.tx_id[i], **values}
    return RejectedRow(
        tx_id=batch.tx.tx_id[i],
        partition=int(batch.partition[i]),
        offset=int(batch.offset[i]),
        reason=reason,
        key=batch.tx.account[i].encode("utf-8", "backslashreplace"),
        value=json.dumps(document, ensure_ascii=True).encode(),
    )
