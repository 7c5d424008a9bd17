"""The ``labels`` table's rows and the SQL both stores share for labels and transaction lookups.

Placeholders are written as ``?``; :func:`for_driver` turns them into psycopg's ``%s``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from fraudstream.schema import LabelMessage

__all__ = [
    "IDS_PER_LOOKUP",
    "INSERT_LABEL",
    "LABEL_COLUMNS",
    "chunks",
    "for_driver",
    "label_rows",
    "lookup_sql",
]

#: The ``labels`` columns in insert order.
LABEL_COLUMNS: Final = (
    "label_id",
    "tx_id",
    "account",
    "counterparty",
    "tx_time_ms",
    "label",
    "source",
    "labelled_at_ms",
    "alert_id",
    "analyst",
    "reason",
    "recorded_at_ms",
)
INSERT_LABEL: Final = (
    f"INSERT INTO labels ({', '.join(LABEL_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(LABEL_COLUMNS))}) ON CONFLICT (label_id) DO NOTHING"
)
#: Transaction ids per lookup query (SQLite allows 32,766 parameters).
IDS_PER_LOOKUP: Final = 500


def for_driver(text: str, placeholder: str) -> str:
    """``text`` with each ``?`` replaced by ``placeholder`` (the SQL here has no other ``?``)."""
    return text.replace("?", placeholder)


def label_rows(labels: Sequence[LabelMessage], recorded_at_ms: int) -> list[tuple[Any, ...]]:
    """One row per distinct ``label_id`` (the first wins), in :data:`LABEL_COLUMNS` order."""
    rows: dict[str | None, tuple[Any, ...]] = {}
    for m in labels:
        if m.label_id not in rows:
            rows[m.label_id] = (
                m.label_id,
                m.tx_id,
                m.account,
                m.counterparty,
                m.tx_time_ms,
                m.label,
                m.source,
                m.labelled_at_ms,
                m.alert_id,
                m.analyst,
                m.reason,
                recorded_at_ms,
            )
    return list(rows.values())


def chunks(tx_ids: Sequence[str]) -> Iterator[list[str]]:
    """The distinct ids in runs of at most :data:`IDS_PER_LOOKUP`."""
    ids = list(dict.fromkeys(tx_ids))
    for at in range(0, len(ids), IDS_PER_LOOKUP):
        yield ids[at : at + IDS_PER_LOOKUP]


def lookup_sql(ids: int) -> str:
    """The stored ``(tx_id, account, counterparty, event_time_ms)`` of ``ids`` ids (primary key)."""
    return (
        "SELECT tx_id, account, counterparty, event_time_ms FROM transactions_enriched "
        f"WHERE tx_id IN ({', '.join('?' * ids)})"
    )
