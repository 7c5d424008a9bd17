"""What happened to each model version, as stored: trained, evaluated, shadow started,
promoted, rejected, rolled back (``fraudstream retrain``, ``fraudstream model``).

``model_events`` is SQLite's migration 15 and PostgreSQL's migration 13 (never edit a released
migration; append one): one row per step, beside ``model_versions`` (one row per version the
detector or ``retrain`` recorded, with its metrics). ``detail`` is a JSON object (the figures
and the reason of the step).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:  # the schemas import this module, and the connection imports the schemas
    from fraudstream.sinks._sqlconn import SqlConnection

__all__ = [
    "EVENTS",
    "ModelEvent",
    "model_events",
    "model_events_table",
    "record_model_event",
]

#: The steps recorded, in the order of a retrain cycle.
EVENTS: Final = (
    "trained",
    "evaluated",
    "shadow_started",
    "shadow_waiting",
    "promoted",
    "rejected",
    "rolled_back",
)

_INSERT: Final = """
INSERT INTO model_events (at_ms, version, event, champion, detail) VALUES (?, ?, ?, ?, ?)"""


@dataclass(frozen=True)
class ModelEvent:
    """One recorded step: its time (ms), model version, kind, the champion then, details."""

    at_ms: int
    version: str
    event: str
    champion: str | None
    detail: dict[str, Any]


def model_events_table(big: str) -> tuple[str, ...]:
    """The statements creating ``model_events`` (``big``: the 64-bit integer type)."""
    return (
        f"""
    CREATE TABLE IF NOT EXISTS model_events (
        at_ms {big} NOT NULL,
        version text NOT NULL,
        event text NOT NULL,
        champion text,
        detail text NOT NULL
    )""",
        "CREATE INDEX IF NOT EXISTS ix_model_events_at ON model_events (at_ms)",
        "CREATE INDEX IF NOT EXISTS ix_model_events_version ON model_events (version, at_ms)",
    )


def record_model_event(
    db: SqlConnection,
    version: str,
    event: str,
    *,
    champion: str | None = None,
    detail: dict[str, Any] | None = None,
    at_ms: int | None = None,
) -> ModelEvent:
    """Store one step of ``version`` (``event`` one of :data:`EVENTS`) and return it."""
    if event not in EVENTS:
        raise ValueError(f"unknown model event {event!r}; expected one of {EVENTS}")
    row = ModelEvent(
        int(time.time() * 1000) if at_ms is None else at_ms, version, event, champion, detail or {}
    )
    text = json.dumps(row.detail, default=str, sort_keys=True)
    with db.transaction("insert into table model_events", "model_events") as tx:
        tx.execute(_INSERT, (row.at_ms, version, event, champion, text))
    return row


class _Reads(Protocol):
    """A connection that answers one query (the store's ``SqlConnection``, the dashboard's
    ``Database``): both take ``?`` placeholders."""

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Any]: ...


def model_events(db: _Reads, *, version: str | None = None, limit: int = 50) -> list[ModelEvent]:
    """The latest ``limit`` steps (of ``version`` if given), oldest first."""
    where, params = ("WHERE version = ?", (version,)) if version is not None else ("", ())
    rows = db.rows(
        f"SELECT at_ms, version, event, champion, detail FROM model_events {where} "
        "ORDER BY at_ms DESC LIMIT ?",
        (*params, int(limit)),
    )
    return [
        ModelEvent(int(at), str(v), str(e), None if c is None else str(c), json.loads(d))
        for at, v, e, c, d in reversed(rows)
    ]
