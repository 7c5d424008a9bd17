"""What the API reads from the store: a decision already made, a transaction, alerts.

Plain functions of the dashboard's :class:`~fraudstream.dashboard.Database` (pooled, one
connection per call, SQLite or PostgreSQL), each one a primary-key lookup or an indexed page.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Final, Protocol

from fraudstream.dashboard import Database
from fraudstream.dashboard._queries import AlertRow, alert_queue, count_alerts, get_alert
from fraudstream.errors import StoreError
from fraudstream.export._tables import feature_sets
from fraudstream.sinks import decode_features
from fraudstream.sinks._rejects import CONTENT_COLUMNS

__all__ = ["Reader", "SqliteReader", "alerts_page", "stored_decision", "stored_transaction"]

_DECISION_COLUMNS: Final = (
    "tx_id",
    "account",
    "counterparty",
    "amount",
    "decision",
    "score",
    "model_version",
    "rules_fired",
    "rule_set_version",
)
_TX_COLUMNS: Final = (
    "tx_id",
    *CONTENT_COLUMNS,
    "score",
    "decision",
    "model_version",
    "processed_at_ms",
    "rules_fired",
    "rule_set_version",
    "features",
)


def _ids(stored: Any) -> list[str]:
    if stored is None:
        return []
    ids = stored if isinstance(stored, list) else json.loads(stored)
    return [str(i) for i in ids]


def _reasons(alert: AlertRow | None) -> list[dict[str, Any]]:
    return [] if alert is None else list(alert.reasons)


class Reader(Protocol):
    def one(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a parameterised query (``?`` placeholders), or ``None``."""


_DECISION_SQL: Final = (
    "SELECT " + ", ".join(_DECISION_COLUMNS) + " FROM transactions_enriched WHERE tx_id = ?"
)


def stored_decision(db: Reader, tx_id: str) -> dict[str, Any] | None:
    """The decision stored for ``tx_id`` (with the alert's reason codes), or ``None``."""
    row = db.one(_DECISION_SQL, (tx_id,))
    if row is None:
        return None
    out = dict(zip(_DECISION_COLUMNS, row, strict=True))
    out["rules_fired"] = _ids(out["rules_fired"])
    reasons = None
    if out["decision"] != "allow":
        reasons = db.one("SELECT reasons FROM fraud_alerts WHERE alert_id = ?", (tx_id,))
    stored = None if reasons is None else reasons[0]
    out["reasons"] = stored if isinstance(stored, list) else json.loads(stored or "[]")
    return out


class SqliteReader:
    """One connection reading a SQLite store, for one thread at a time.

    The decisions' lookups run on the event loop: a pooled connection's bookkeeping costs more
    than the primary-key read itself. In WAL mode a reader never waits for the writer; a lock
    held longer than ``busy_timeout_s`` (a checkpoint) is a ``StoreError``.
    """

    def __init__(self, path: str, *, busy_timeout_s: float = 0.02) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        try:
            if self._conn is None:  # it only reads; read-only mode could not open a WAL file
                self._conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_s, check_same_thread=False
                )
            row: tuple[Any, ...] | None = self._conn.execute(text, tuple(params)).fetchone()
            return row
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: lookup failed: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def stored_transaction(db: Database, tx_id: str) -> dict[str, Any] | None:
    """The stored transaction ``tx_id`` with its features by name, decision and alert."""
    row = db.one(
        "SELECT "
        + ", ".join(f'"{c}"' for c in _TX_COLUMNS)
        + " FROM transactions_enriched WHERE tx_id = ?",
        (tx_id,),
    )
    if row is None:
        return None
    out = dict(zip(_TX_COLUMNS, row, strict=True))
    names = feature_sets(db).get(str(out["model_version"]), ())
    raw = out["features"]
    out["features"] = (
        decode_features(bytes(raw), names)
        if isinstance(raw, bytes | memoryview)
        else dict(zip(names, (float(v) for v in raw), strict=True))
    )
    out["rules_fired"] = _ids(out["rules_fired"])
    alert = get_alert(db, tx_id) if out["decision"] != "allow" else None
    out["reasons"] = _reasons(alert)
    out["alert_status"] = None if alert is None else alert.status
    return out


def alerts_page(
    db: Database,
    *,
    status: str | None,
    decision: str | None,
    search: str | None,
    order: str,
    limit: int,
    offset: int,
) -> tuple[int, list[AlertRow]]:
    """``(total matching, one page)`` of alerts, the dashboard's review-queue query."""
    total = count_alerts(db, status, decision, search)
    page = alert_queue(db, status, decision, order, limit, offset, search)
    return total, page
