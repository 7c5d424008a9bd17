"""The store contract and its factory from a URL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fraudstream._redact import redact
from fraudstream.errors import ConfigError
from fraudstream.schema import LabelMessage, ScoredBatch, WindowStats
from fraudstream.sinks._drift import DriftWindow
from fraudstream.sinks._postgres import PostgresStore
from fraudstream.sinks._rejects import RejectedRow
from fraudstream.sinks._sqlite import SQLiteStore

__all__ = ["Store", "open_store"]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://", "postgresql+")
_ACCEPTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory: "
    "or postgresql://user@host:5432/database"
)


@runtime_checkable
class Store(Protocol):
    """Where the detector keeps enriched transactions, alerts, window statistics, models and labels.

    Writes are idempotent on the transaction id and become durable at ``flush``. ``flush``
    raises ``StoreDataError`` when the store refuses a row's data (retrying fails again) and
    ``StoreError`` when it is unavailable (retrying may succeed).
    """

    def open(self) -> None:
        """Connect and run the migrations (idempotent)."""

    def write(self, batch: ScoredBatch) -> None:
        """Enriched rows for every transaction plus alerts for review/block rows."""

    def write_window_stats(self, stats: Sequence[WindowStats]) -> None:
        """Insert or replace window statistics, keyed by ``window_end_ms``."""

    def write_drift(self, windows: Sequence[DriftWindow]) -> None:
        """Insert or replace the PSI rows of these drift windows (``model_drift``)."""

    def drift_alarms(self, after_ms: int) -> list[tuple[Any, ...]]:
        """Rows of the drift alarms raised at windows ending after ``after_ms``
        (``sinks._drift.RAISED_SQL``: version, window end, window, rows, feature, PSI)."""

    def record_model_version(self, version: str, metrics_json: str) -> None:
        """Remember a model version and its metrics (JSON text)."""

    def flush(self) -> None:
        """Make everything written so far durable; raise ``StoreError`` on failure."""

    def close(self) -> None:
        """Flush and release the connection."""

    def take_rejected(self) -> list[RejectedRow]:
        """Rows the flushes since the last call did not store: an id stored with other content."""

    def record_labels(self, labels: Sequence[LabelMessage]) -> int:
        """Insert labels into ``labels`` and commit them; the number newly inserted.

        Idempotent on ``label_id``: a label recorded before (or twice in ``labels``) is skipped.
        Committing also makes what was written before durable (SQLite shares one transaction).
        """

    def lookup_transactions(self, tx_ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """``tx_id → (account, counterparty, event_time_ms)`` for the stored transactions among
        ``tx_ids`` (absent ids are left out; rows not yet flushed may be missing)."""

    def count_transactions(self) -> int:
        """Stored enriched transactions."""

    def count_alerts_by_decision(self) -> dict[str, int]:
        """Stored alerts per decision: ``{"review": n, "block": m}``."""


def open_store(
    url: str, *, schema: str | None = None, retention_days: float | None = None
) -> Store:
    """The store for ``url`` (not yet opened: call ``open()``).

    ``sqlite:///data/fs.db`` is relative to the working directory, ``sqlite:////var/fs.db``
    absolute; the parent directory is created on ``open()``. ``postgresql://…`` (libpq URL) is
    PostgreSQL, in ``schema`` if given. ``retention_days`` bounds enriched transactions by age.
    """
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE) :]
        if path:
            return SQLiteStore(Path(path), retention_days=retention_days)
        raise ConfigError(f"store URL {url!r} has no file path; use {_ACCEPTED}")
    if url.startswith(_POSTGRES):
        if url.startswith("postgresql+"):  # SQLAlchemy-style driver suffix: libpq ignores it
            url = "postgresql://" + url.split("://", 1)[-1]
        return PostgresStore(url, schema=schema, retention_days=retention_days)
    raise ConfigError(f"unsupported store URL {redact(url)!r}; use {_ACCEPTED}")
