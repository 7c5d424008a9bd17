"""The PostgreSQL store: a connection pool, writes buffered until ``flush`` copies them in.

``flush`` runs one transaction. Enriched rows go in by binary ``COPY`` straight into
``transactions_enriched`` inside a savepoint; if any ``tx_id`` is already stored (a redelivered
batch) the savepoint is rolled back and the rows are staged in a temp table, then moved with
``INSERT … SELECT … ON CONFLICT (tx_id) DO NOTHING``: idempotent on the transaction id either way.
Alerts take the staged path always (they are few). Every value is bound or copied, never
interpolated into SQL.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from fraudstream._redact import redact
from fraudstream.errors import StoreDataError, StoreError
from fraudstream.schema import DECISIONS, LabelMessage, ScoredBatch, WindowStats
from fraudstream.sinks._drift import RAISED_SQL, DriftWindow, drift_rows
from fraudstream.sinks._labelrows import INSERT_LABEL, chunks, for_driver, label_rows, lookup_sql
from fraudstream.sinks._migrate import apply_migrations
from fraudstream.sinks._pgcopy import ENRICHED_COPY_COLUMNS, binary_copy, enriched_copy
from fraudstream.sinks._postgres_schema import CREATE_MIGRATIONS_TABLE, MIGRATIONS
from fraudstream.sinks._rejects import CONTENT_COLUMNS, RejectedRow, conflict_reason, rejected_row
from fraudstream.sinks._rows import alert_rows, feature_order, shadow_rows

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

_ALERT_COLS: Final = (
    "alert_id, tx_id, created_at_ms, event_time_ms, account, counterparty, "
    "amount, score, decision, reasons, model_version, rules_fired, rules_shadow, rule_set_version"
)
_INSERT_SHADOW: Final = """
INSERT INTO shadow_decisions (tx_id, model_version, score, decision, processed_at_ms)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tx_id, model_version) DO NOTHING"""
_COPY_ENRICHED: Final = f"COPY {{}} ({ENRICHED_COPY_COLUMNS}) FROM STDIN (FORMAT binary)"
_TEMP_ENRICHED: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS fs_tmp_enriched "
    "(LIKE transactions_enriched) ON COMMIT DELETE ROWS"
)
_TEMP_ALERTS: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS fs_tmp_alerts (LIKE fraud_alerts INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_MOVE_ENRICHED: Final = f"""
INSERT INTO transactions_enriched ({ENRICHED_COPY_COLUMNS})
SELECT {ENRICHED_COPY_COLUMNS} FROM fs_tmp_enriched
ON CONFLICT (tx_id) DO NOTHING"""
#: The staged rows whose ``tx_id`` is stored with other content (after the move).
_CONFLICTS: Final = f"""
SELECT s.tx_id, s."partition", s."offset", t."partition", t."offset"
FROM fs_tmp_enriched s JOIN transactions_enriched t ON t.tx_id = s.tx_id
WHERE ({", ".join("s." + c for c in CONTENT_COLUMNS)})
    IS DISTINCT FROM ({", ".join("t." + c for c in CONTENT_COLUMNS)})"""
#: What PostgreSQL refuses as data (class 22: a value it cannot keep, e.g. a NUL character;
#: class 23: a constraint), and what encoding a row for it refuses: retrying the same rows fails
#: again. Anything else (connection lost, timeout, a missing table) is an outage and retried.
_DATA_ERRORS: Final = (psycopg.errors.DataError, psycopg.errors.IntegrityError, UnicodeError)
_FEATURE_SET: Final = """
INSERT INTO feature_sets (model_version, feature_names, first_seen_ms) VALUES (%s, %s, %s)
ON CONFLICT (model_version) DO NOTHING"""
_MOVE_ALERTS: Final = f"""
INSERT INTO fraud_alerts ({_ALERT_COLS})
SELECT {_ALERT_COLS} FROM fs_tmp_alerts
ON CONFLICT (alert_id) DO NOTHING"""
_UPSERT_WINDOW: Final = """
INSERT INTO window_stats (
    window_end_ms, window_ms, transactions, frauds, alerts, amount, fraud_amount
) VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (window_end_ms) DO UPDATE SET
    window_ms = excluded.window_ms,
    transactions = excluded.transactions,
    frauds = excluded.frauds,
    alerts = excluded.alerts,
    amount = excluded.amount,
    fraud_amount = excluded.fraud_amount"""
_UPSERT_DRIFT: Final = """
INSERT INTO model_drift (model_version, window_end_ms, feature, window_ms, row_count, psi, alarm)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (model_version, window_end_ms, feature) DO UPDATE SET
    window_ms = excluded.window_ms, row_count = excluded.row_count, psi = excluded.psi,
    alarm = excluded.alarm"""
_UPSERT_MODEL: Final = """
INSERT INTO model_versions (version, metrics, first_seen_ms) VALUES (%s, %s::jsonb, %s)
ON CONFLICT (version) DO UPDATE SET metrics = excluded.metrics"""
_UPSERT_FAILURE: Final = """
INSERT INTO notification_failures (alert_id, channel, attempts, error, payload, failed_at_ms)
VALUES (%s, %s, %s, %s, %s::jsonb, %s)
ON CONFLICT (alert_id, channel) DO UPDATE SET
    attempts = notification_failures.attempts + excluded.attempts,
    error = excluded.error,
    failed_at_ms = excluded.failed_at_ms"""
_INSERT_LABEL: Final = for_driver(INSERT_LABEL, "%s")
_INSERT_SENT: Final = """
INSERT INTO notifications_sent (alert_id, channel, sent_at_ms) VALUES (%s, %s, %s)
ON CONFLICT (alert_id, channel) DO NOTHING"""
_NOTIFIED: Final = """
SELECT channel FROM notifications_sent WHERE alert_id = %s
UNION SELECT channel FROM notification_failures WHERE alert_id = %s"""
#: Serialises concurrent migrations of one database (any constant key works).
_MIGRATION_LOCK: Final = 0x66_72_61_75_64
_SCHEMA_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PostgresStore:
    """The store in PostgreSQL (``postgresql://user@host:port/db``), through a connection pool.

    ``write`` only buffers the batch (do not modify it before ``flush``); ``flush`` sends the
    buffer in one transaction. Features are stored as ``real[]`` in the order of
    ``feature_sets.feature_names`` for the row's model version (recorded on first sight). A
    failed flush discards the buffer (like a rollback) and raises ``StoreError``: the caller
    replays the batch.
    ``schema`` (optional) is created on ``open`` and used as the ``search_path``.
    ``retention_days`` (optional): ``flush`` also deletes enriched rows older than that (by event
    time), at most once per ``retention_every_s``.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_max: int = 4,
        connect_timeout_s: float = 5.0,
        retention_days: float | None = None,
        retention_every_s: float = 60.0,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"PostgreSQL schema name {schema!r} is invalid; use letters, digits and _"
            )
        self.url = url
        self.schema = schema
        self.pool_max = pool_max
        self.connect_timeout_s = connect_timeout_s
        self.retention_days = retention_days
        self.retention_every_s = retention_every_s
        self._pool: ConnectionPool | None = None
        self._batches: list[ScoredBatch] = []
        self._feature_names: dict[str, tuple[str, ...]] = {}
        self._learnt: dict[str, tuple[str, ...]] = {}
        self._alerts: list[list[tuple[Any, ...]]] = []  # per batch of ``_batches``
        self._rejected: list[RejectedRow] = []
        self._windows: dict[int, tuple[Any, ...]] = {}
        self._drift: list[DriftWindow] = []
        self._models: list[tuple[Any, ...]] = []
        self._last_retention = 0.0

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r}, schema={self.schema!r})"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except _DATA_ERRORS as exc:
            raise StoreDataError(
                f"PostgreSQL store {redact(self.url)}: {action} failed: "
                f"{type(exc).__name__}: {exc}".rstrip()
                + "; the row cannot be stored as it is"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL store {redact(self.url)}: {action} failed: "
                f"{type(exc).__name__}: {exc}".rstrip()
                + "; check that PostgreSQL is running and reachable at that URL"
            ) from exc

    def _connection(self) -> Any:
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {redact(self.url)} is not open; call open() first")
        return self._pool.connection(timeout=self.connect_timeout_s)

    def open(self) -> None:
        """Create the pool, the schema if named, and apply the pending migrations."""
        if self._pool is not None:
            return
        kwargs: dict[str, Any] = {"connect_timeout": max(1, round(self.connect_timeout_s))}
        if self.schema is not None:
            kwargs["options"] = f"-csearch_path={self.schema}"
        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_max,
            kwargs=kwargs,
            open=False,
            check=ConnectionPool.check_connection,
            name="fraudstream-store",
        )
        try:
            with self._guard("connect"):
                pool.open(wait=True, timeout=self.connect_timeout_s)
            self._pool = pool
            self._migrate()
        except BaseException:
            self._pool = None
            pool.close()
            raise

    def _migrate(self) -> None:
        guard = self._guard("migrate table schema_migrations")
        with guard, self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if self.schema is not None:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            conn.execute(CREATE_MIGRATIONS_TABLE)
            apply_migrations(
                conn.execute,
                MIGRATIONS,
                placeholder="%s",
                store=f"PostgreSQL store {redact(self.url)}",
                upgrade_hint="upgrade fraudstream",
            )

    def schema_version(self) -> int:
        """The highest applied migration."""
        with self._guard("read table schema_migrations"), self._connection() as conn:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def write(self, batch: ScoredBatch) -> None:
        """Buffer enriched rows for every transaction, alerts for review/block rows."""
        if len(batch) == 0:
            return
        self._alerts.append(alert_rows(batch))  # also checks the column lengths
        self._batches.append(batch)

    def write_window_stats(self, stats: Sequence[WindowStats]) -> None:
        """Buffer these windows (the last value per ``window_end_ms`` wins)."""
        for s in stats:
            self._windows[s.window_end_ms] = (
                s.window_end_ms,
                s.window_ms,
                s.transactions,
                s.frauds,
                s.alerts,
                s.amount,
                s.fraud_amount,
            )

    def write_drift(self, windows: Sequence[DriftWindow]) -> None:
        """Buffer the PSI rows of these drift windows."""
        self._drift += windows

    def record_model_version(self, version: str, metrics_json: str) -> None:
        """Buffer a model version and its metrics (JSON); the first sighting time is kept."""
        self._models.append((version, metrics_json, _now_ms()))

    def _pending(self) -> bool:
        return bool(self._batches or self._alerts or self._windows or self._models or self._drift)

    def take_rejected(self) -> list[RejectedRow]:
        """Rows not stored as given by the flushes since the last call (conflicting ids)."""
        rejected, self._rejected = self._rejected, []
        return rejected

    def flush(self) -> None:
        """Send everything buffered in one transaction; on failure discard it and raise.

        A row whose ``tx_id`` is stored with other content is not stored (nor its alert) and is
        reported by :meth:`take_rejected`; an identical one is skipped silently.
        """
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {redact(self.url)} is not open; call open() first")
        due = self._retention_due()
        if not self._pending() and not due:
            return
        try:
            guard = self._guard("write to tables transactions_enriched/fraud_alerts")
            with guard, self._connection() as conn, conn.transaction():
                rejected = self._send(conn)
                if due:
                    self._apply_retention(conn)
            self._feature_names.update(self._learnt)
            self._rejected += rejected
        finally:
            self._learnt = {}
            self._batches, self._alerts, self._models = [], [], []
            self._windows = {}
            self._drift = []

    def _send(self, conn: Any) -> list[RejectedRow]:
        """Everything buffered, on ``conn``'s open transaction; the conflicting rows."""
        conflicts: dict[tuple[int, int], str] = {}
        with conn.cursor() as cur:
            if self._batches:
                conflicts = self._send_enriched(conn, cur)
            alerts = self._alerts
            if conflicts:  # no alert of a row that was not stored
                alerts = [
                    [
                        r
                        for r, i in zip(rows, b.alert_index().tolist(), strict=True)
                        if (k, i) not in conflicts
                    ]
                    for k, (b, rows) in enumerate(zip(self._batches, self._alerts, strict=True))
                ]
            if any(alerts):
                cur.execute(_TEMP_ALERTS)
                with cur.copy(f"COPY fs_tmp_alerts ({_ALERT_COLS}) FROM STDIN") as copy:
                    for row in chain.from_iterable(alerts):
                        copy.write_row(row)
                cur.execute(_MOVE_ALERTS)
            shadow = [
                row
                for k, b in enumerate(self._batches)
                for i, row in enumerate(shadow_rows(b))
                if (k, i) not in conflicts
            ]
            if shadow:
                cur.executemany(_INSERT_SHADOW, shadow)
            if self._windows:
                cur.executemany(_UPSERT_WINDOW, list(self._windows.values()))
            if self._drift:
                cur.executemany(_UPSERT_DRIFT, drift_rows(self._drift))
            if self._models:
                cur.executemany(_UPSERT_MODEL, self._models)
        return [rejected_row(self._batches[k], i, why) for (k, i), why in conflicts.items()]

    def _send_enriched(self, conn: Any, cur: Any) -> dict[tuple[int, int], str]:
        """Binary COPY straight into the table; staged and deduplicated if that meets a tx_id.

        Returns the conflicting rows, ``(batch number, row) → reason`` (only a staged copy
        can meet any).
        """
        known: dict[str, tuple[str, ...]] = {}
        payload = binary_copy(
            [enriched_copy(b, self._feature_order(cur, b, known)) for b in self._batches]
        )
        try:
            with (
                conn.transaction(),
                cur.copy(
                    sql.SQL(_COPY_ENRICHED).format(sql.Identifier("transactions_enriched"))
                ) as copy,
            ):
                copy.write(payload)
        except psycopg.errors.UniqueViolation:
            log.info(
                "PostgreSQL store: %d enriched rows include stored tx_ids (a redelivery); "
                "inserting the new ones only",
                sum(len(b) for b in self._batches),
            )
            cur.execute(_TEMP_ENRICHED)
            with cur.copy(sql.SQL(_COPY_ENRICHED).format(sql.Identifier("fs_tmp_enriched"))) as c:
                c.write(payload)
            cur.execute(_MOVE_ENRICHED)
            self._learnt = known
            return self._conflicts(cur)
        self._learnt = known
        return {}

    def _conflicts(self, cur: Any) -> dict[tuple[int, int], str]:
        """The staged rows whose ``tx_id`` is stored with other content, with the reason."""
        cur.execute(_CONFLICTS)
        found = cur.fetchall()
        if not found:
            return {}
        where = {
            (tx_id, p, o): (k, i)
            for k, b in enumerate(self._batches)
            for i, (tx_id, p, o) in enumerate(
                zip(b.tx.tx_id, b.partition.tolist(), b.offset.tolist(), strict=True)
            )
        }
        log.warning("PostgreSQL store: %d conflicting duplicate id(s)", len(found))
        return {
            where[(tx_id, p, o)]: conflict_reason(tx_id, stored_p, stored_o)
            for tx_id, p, o, stored_p, stored_o in found
        }

    def _feature_order(
        self, cur: Any, batch: ScoredBatch, known: dict[str, tuple[str, ...]]
    ) -> npt.NDArray[np.intp] | None:
        """The column permutation into the stored feature order of the batch's model version.

        The first batch of a version records its order in ``feature_sets``; ``known`` collects
        what this transaction learnt (kept once it commits).
        """
        version, names = batch.model_version, batch.feature_names
        stored = self._feature_names.get(version) or known.get(version)
        if stored is None:
            cur.execute(_FEATURE_SET, (version, list(names), _now_ms()))
            cur.execute(
                "SELECT feature_names FROM feature_sets WHERE model_version = %s", (version,)
            )
            stored = tuple(cur.fetchone()[0])
            known[version] = stored
        return feature_order(stored, names, version, f"PostgreSQL store {redact(self.url)}")

    def _retention_due(self) -> bool:
        if self.retention_days is None:
            return False
        return time.monotonic() - self._last_retention >= self.retention_every_s

    def _apply_retention(self, conn: Any) -> None:
        assert self.retention_days is not None  # noqa: S101 - checked by _retention_due
        cutoff_ms = _now_ms() - int(self.retention_days * 86_400_000)
        cur = conn.execute(
            "DELETE FROM transactions_enriched WHERE event_time_ms < %s", (cutoff_ms,)
        )
        self._last_retention = time.monotonic()
        if cur.rowcount:
            log.info(
                "retention: deleted %d enriched rows older than %s ms", cur.rowcount, cutoff_ms
            )

    def delete_enriched_before(self, cutoff_ms: int) -> int:
        """Delete enriched rows with ``event_time_ms < cutoff_ms``; the number deleted."""
        with self._guard("delete from table transactions_enriched"), self._connection() as conn:
            cur = conn.execute(
                "DELETE FROM transactions_enriched WHERE event_time_ms < %s", (cutoff_ms,)
            )
            return int(cur.rowcount)

    def record_labels(self, labels: Sequence[LabelMessage]) -> int:
        """Insert (and commit, in a transaction of their own) labels not yet recorded, by
        ``label_id``; the number newly inserted (re-recording one is a no-op)."""
        rows = label_rows(labels, _now_ms())
        if not rows:
            return 0
        guard = self._guard("insert into table labels")
        with guard, self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT_LABEL, rows)
            return int(cur.rowcount)

    def lookup_transactions(self, tx_ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """``tx_id → (account, counterparty, event_time_ms)`` of the stored (flushed) ones among
        ``tx_ids``."""
        found: dict[str, tuple[str, str, int]] = {}
        guard = self._guard("read table transactions_enriched")
        with guard, self._connection() as conn:
            for chunk in chunks(tx_ids):
                rows = conn.execute(for_driver(lookup_sql(len(chunk)), "%s"), chunk)
                for tx_id, account, counterparty, event_ms in rows:
                    found[tx_id] = (account, counterparty, int(event_ms))
        return found

    def close(self) -> None:
        """Flush pending writes and close the pool (closed even if the flush fails)."""
        pool = self._pool
        if pool is None:
            return
        try:
            if self._pending():
                self.flush()
        finally:
            self._pool = None
            pool.close()

    def record_notification_failure(
        self, alert_id: str, channel: str, attempts: int, error: str, payload: str
    ) -> None:
        """Record (and commit) a notification that failed for good; the latest error wins."""
        with self._guard("upsert into table notification_failures"), self._connection() as conn:
            conn.execute(_UPSERT_FAILURE, (alert_id, channel, attempts, error, payload, _now_ms()))

    def record_notification_sent(self, alert_id: str, channel: str) -> None:
        """Record (and commit) that ``alert_id`` was delivered on ``channel``."""
        with self._guard("insert into table notifications_sent"), self._connection() as conn:
            conn.execute(_INSERT_SENT, (alert_id, channel, _now_ms()))

    def drift_alarms(self, after_ms: int) -> list[tuple[Any, ...]]:
        """The rows of the drift alarms raised at windows ending after ``after_ms``
        (``sinks._drift.RAISED_SQL``)."""
        with self._guard("read table model_drift"), self._connection() as conn:
            rows = conn.execute(RAISED_SQL.replace("?", "%s"), (after_ms,)).fetchall()
        return [tuple(r) for r in rows]

    def notified_channels(self, alert_id: str) -> set[str]:
        """Channels on which ``alert_id`` was delivered or recorded as failed for good."""
        guard = self._guard("read tables notifications_sent/notification_failures")
        with guard, self._connection() as conn:
            rows = conn.execute(_NOTIFIED, (alert_id, alert_id)).fetchall()
        return {str(r[0]) for r in rows}

    def count_notification_failures(self) -> int:
        """Rows in ``notification_failures``."""
        with self._guard("count table notification_failures"), self._connection() as conn:
            row = conn.execute("SELECT count(*) FROM notification_failures").fetchone()
        return int(row[0])

    def count_transactions(self) -> int:
        """Rows in ``transactions_enriched`` (flushed ones)."""
        with self._guard("count table transactions_enriched"), self._connection() as conn:
            row = conn.execute("SELECT count(*) FROM transactions_enriched").fetchone()
        return int(row[0])

    def count_alerts_by_decision(self) -> dict[str, int]:
        """Alerts per decision: ``{"review": n, "block": m}``."""
        counts = dict.fromkeys(DECISIONS[1:], 0)
        with self._guard("count table fraud_alerts"), self._connection() as conn:
            rows = conn.execute("SELECT decision, count(*) FROM fraud_alerts GROUP BY decision")
            for decision, n in rows:
                counts[decision] = int(n)
        return counts
