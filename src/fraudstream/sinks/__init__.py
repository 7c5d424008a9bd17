"""Outputs of the detector: the store (SQLite; PostgreSQL later) and the alerts topic."""

from __future__ import annotations

from fraudstream.sinks._alerts import AlertTopicSink, alert_payloads
from fraudstream.sinks._rows import Alert, Reason
from fraudstream.sinks._sqlite import SQLiteStore
from fraudstream.sinks._store import Store, open_store

__all__ = [
    "Alert",
    "AlertTopicSink",
    "Reason",
    "SQLiteStore",
    "Store",
    "alert_payloads",
    "open_store",
]
