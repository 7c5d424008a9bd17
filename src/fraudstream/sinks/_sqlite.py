"""The SQLite store: one connection, WAL, explicit transactions committed by ``flush``."""

from __future__ import annotations

import functools
import itertools
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from fraudstream.errors import StoreDataError, StoreError
from fraudstream.schema import DECISIONS, LabelMessage, ScoredBatch, WindowStats
from fraudstream.sinks._drift import RAISED_SQL, DriftWindow, drift_rows
from fraudstream.sinks._labelrows import INSERT_LABEL, chunks, label_rows, lookup_sql
from fraudstream.sinks._migrate import apply_migrations
from fraudstream.sinks._rejects import (
    CONTENT_COLUMNS,
    RejectedRow,
    conflict_reason,
    content,
    rejected_row,
)
from fraudstream.sinks._rows import (
    ENRICHED_WIDTH,
    alert_rows,
    enriched_flat,
    feature_order,
    json_feature_names,
    json_features_blob,
    shadow_rows,
)
from fraudstream.sinks._sqlite_schema import CREATE_MIGRATIONS_TABLE, MIGRATIONS

__all__ = ["SQLiteStore"]

log = logging.getLogger(__name__)

_ENRICHED_COLUMNS: Final = (
    "tx_id, event_time_ms, account, counterparty, kind, amount, "
    "old_balance_orig, new_balance_orig, old_balance_dest, new_balance_dest, "
    'label, step, features, score, decision, model_version, "partition", "offset", '
    "processed_at_ms, ingest_block, rules_fired, rules_shadow, rule_set_version"
)
#: Enriched rows per INSERT statement. Python's sqlite3 releases and re-takes the GIL around
#: every statement step; one step per row hands the GIL to the consuming thread 20,000 times a
#: batch, and waiting to get it back cost the output thread more than the inserts themselves.
#: 512 rows (157 steps a batch of 20,000 at 128 rows, 40 now): the card bench's store_write
#: 8.4-9.0 → 7.2-8.1 µs/tx. 512 × 23 parameters stays well below SQLite's 32,766.
_ROWS_PER_INSERT: Final = 512


_INSERT_ENRICHED: Final = (
    f"INSERT INTO transactions_enriched ({_ENRICHED_COLUMNS}) VALUES ",
    " ON CONFLICT (tx_id) DO NOTHING",
)
#: Rows per ``ingest_block`` (a batch's rows share the block its first row falls in). The
#: account index leads with the block, so its hot subtree holds at most this many rows (+ a batch).
#: Smaller is cheaper to insert into (store alone, µs/row: 6.0 at 65,536, 5.2 at 16,384; in the
#: detector no gain below 16,384) but the history query probes every block.
_BLOCK_ROWS: Final = 16_384

_STORED_CONTENT: Final = (
    f'SELECT tx_id, {", ".join(CONTENT_COLUMNS)}, "partition", "offset" '
    "FROM transactions_enriched WHERE tx_id IN ({})"
)
#: Ids per conflict lookup (SQLite allows 32,766 parameters).
_IDS_PER_LOOKUP: Final = 500
#: What the store refuses as data (retrying the same rows fails again); any other error is an
#: outage. Python's sqlite3 raises the last two while binding (e.g. a lone surrogate in a text).
_DATA_ERRORS: Final = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, UnicodeError)

_FEATURE_SET: Final = """
INSERT INTO feature_sets (model_version, feature_names, first_seen_ms) VALUES (?, ?, ?)
ON CONFLICT (model_version) DO NOTHING"""

_INSERT_SHADOW: Final = (
    "INSERT OR IGNORE INTO shadow_decisions "
    "(tx_id, model_version, score, decision, processed_at_ms) VALUES ",
    "",
)
_INSERT_ALERT: Final = (
    """INSERT INTO fraud_alerts (
    alert_id, tx_id, created_at_ms, event_time_ms, account, counterparty,
    amount, score, decision, reasons, model_version, rules_fired, rules_shadow, rule_set_version
) VALUES """,
    " ON CONFLICT (alert_id) DO NOTHING",
)
#: Alert and shadow rows per INSERT statement, for the reason given at :data:`_ROWS_PER_INSERT`
#: (rules that raise alerts on 4 % of the rows made a step per alert the output thread's cost).
_SMALL_ROWS_PER_INSERT: Final = 64


@functools.cache
def _multi_row(insert: tuple[str, str], width: int, rows: int) -> str:
    """``insert``'s head, ``rows`` VALUES tuples of ``width`` parameters, its tail."""
    row = "(" + ", ".join("?" * width) + ")"
    return insert[0] + ", ".join([row] * rows) + insert[1]


def _insert_rows(
    conn: sqlite3.Connection, insert: tuple[str, str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples of one width) with :data:`_SMALL_ROWS_PER_INSERT` per step."""
    flat = list(itertools.chain.from_iterable(rows))
    _insert_flat(conn, insert, len(rows[0]), flat, _SMALL_ROWS_PER_INSERT)


def _insert_flat(
    conn: sqlite3.Connection, insert: tuple[str, str], width: int, flat: list[Any], per: int
) -> None:
    """Insert the rows of ``flat`` (``width`` values each, row after row), ``per`` rows a
    statement step."""
    rows = len(flat) // width
    full = rows - rows % per
    if full:
        step = per * width
        chunks = (flat[i : i + step] for i in range(0, full * width, step))
        conn.executemany(_multi_row(insert, width, per), chunks)
    if rows > full:
        conn.execute(_multi_row(insert, width, rows - full), flat[full * width :])


_UPSERT_WINDOW: Final = """
INSERT INTO window_stats (
    window_end_ms, window_ms, transactions, frauds, alerts, amount, fraud_amount
) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (window_end_ms) DO UPDATE SET
    window_ms = excluded.window_ms,
    transactions = excluded.transactions,
    frauds = excluded.frauds,
    alerts = excluded.alerts,
    amount = excluded.amount,
    fraud_amount = excluded.fraud_amount"""

_UPSERT_DRIFT: Final = """
INSERT INTO model_drift (model_version, window_end_ms, feature, window_ms, row_count, psi, alarm)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (model_version, window_end_ms, feature) DO UPDATE SET
    window_ms = excluded.window_ms, row_count = excluded.row_count, psi = excluded.psi,
    alarm = excluded.alarm"""

_UPSERT_MODEL: Final = """
INSERT INTO model_versions (version, metrics, first_seen_ms) VALUES (?, ?, ?)
ON CONFLICT (version) DO UPDATE SET metrics = excluded.metrics"""

_UPSERT_FAILURE: Final = """
INSERT INTO notification_failures (alert_id, channel, attempts, error, payload, failed_at_ms)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (alert_id, channel) DO UPDATE SET
    attempts = notification_failures.attempts + excluded.attempts,
    error = excluded.error,
    failed_at_ms = excluded.failed_at_ms"""

_INSERT_SENT: Final = """
INSERT INTO notifications_sent (alert_id, channel, sent_at_ms) VALUES (?, ?, ?)
ON CONFLICT (alert_id, channel) DO NOTHING"""

_NOTIFIED: Final = """
SELECT channel FROM notifications_sent WHERE alert_id = ?
UNION SELECT channel FROM notification_failures WHERE alert_id = ?"""

_SYNCHRONOUS: Final = ("NORMAL", "FULL")
#: Page cache of the writer connection (grown on demand): the newest blocks of the indexes stay hot.
_CACHE_KIB: Final = 65_536
#: Page size of a new store file (an existing file keeps its own). Fewer, larger pages per batch:
#: in-process sustained runs gave 116,000 tx/s on average with 4 KiB pages (SQLite's default),
#: 121,000 with 8 KiB and 125,000 with 16 KiB; p99 at 5,000 tx/s 18.5 / 21.3 / 24.6 ms.
_PAGE_BYTES: Final = 16_384
#: The write-ahead log is checkpointed (copied into the database file, which is synced) by the
#: detector's sink thread between batches (:meth:`SQLiteStore.maintain`), at most this often ...
_IDLE_CHECKPOINT_S: Final = 0.5
#: ... and by a commit itself only past this many pages (256 MiB at 16 KiB), as a safety net
#: when the sink thread is never idle. SQLite's default, 1,000 pages, made every ~30th commit
#: of a 5,000 tx/s stream also copy 16 MiB and sync: 20-40 ms late, the tail of the latency.
_AUTOCHECKPOINT_PAGES: Final = 16_384


def _encode_names(names: Sequence[str]) -> str:
    return msgspec.json.encode(list(names)).decode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _hint(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "another process holds the write lock; stop it or retry later"
    if "readonly" in text or "unable to open" in text:
        return "check that the file and its directory exist and are writable"
    if "disk" in text or "full" in text:
        return "free disk space or move the store to another disk"
    if "no such" in text:
        return "the schema is out of date; reopen the store to run its migrations"
    if "not a database" in text or "malformed" in text:
        return "the file is not a healthy SQLite database; point the store URL at another file"
    return "check the store file and the message above"


class SQLiteStore:
    """The store in one SQLite file (``:memory:`` for a private in-memory database).

    ``open`` connects and applies the pending migrations of ``_sqlite_schema``. Writes join one
    explicit transaction (holding the write lock) until ``flush`` commits it; a failed statement
    rolls back everything not yet flushed, so the caller replays the batch. Inserts are idempotent
    on ``tx_id``. WAL mode lets readers (the dashboard) run alongside the writer.

    Durability: with the default ``synchronous="NORMAL"`` a commit survives a crash of the process,
    but the last commits may be lost on power failure or an OS crash although their Kafka offsets
    were committed; ``"FULL"`` syncs the WAL on every commit and closes that gap at some cost.
    One connection, used by one thread at a time (the detector opens it, its sink thread writes).
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 30.0,
        retention_days: float | None = None,
        retention_every_s: float = 60.0,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.retention_every_s = retention_every_s
        self._last_retention = 0.0
        self._checkpointed_at = 0.0
        self._uncheckpointed = False  # commits since the last checkpoint
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._feature_names: dict[str, tuple[str, ...]] = {}  # feature_sets, as committed
        self._rows_before = 0  # ~rows inserted before the next batch: its ``ingest_block``
        self._pending_rejects: list[RejectedRow] = []  # found in the open transaction
        self._rejected: list[RejectedRow] = []  # committed, not yet taken

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn ``sqlite3.Error`` into ``StoreError`` after rolling back the open transaction
        (``StoreDataError`` for a value or constraint the store refuses)."""
        try:
            yield
        except (sqlite3.Error, *_DATA_ERRORS) as exc:
            conn = self._conn
            self._pending_rejects.clear()
            if conn is not None and conn.in_transaction:
                try:
                    self._feature_names.clear()  # may not have been committed
                    conn.rollback()
                except sqlite3.Error:
                    log.exception("rollback failed on %s", self.path)
            if isinstance(exc, _DATA_ERRORS):
                raise StoreDataError(
                    f"SQLite store {self.path}: {action} failed: {type(exc).__name__}: {exc}; "
                    "the row cannot be stored as it is"
                ) from exc
            assert isinstance(exc, sqlite3.Error)  # noqa: S101 - the other branch of the except
            raise StoreError(
                f"SQLite store {self.path}: {action} failed: {exc}; {_hint(exc)}"
            ) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store {self.path} is not open; call open() first")
        return self._conn

    def _begin(self) -> sqlite3.Connection:
        conn = self._connection()
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        return conn

    def open(self) -> None:
        """Connect, configure and migrate; a no-op when already open."""
        if self._conn is not None:
            return
        if str(self.path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"SQLite store {self.path}: cannot create directory {self.path.parent}: "
                    f"{exc}; choose a writable location in the store URL"
                ) from exc
        if self.synchronous not in _SYNCHRONOUS:
            raise StoreError(f"SQLite synchronous={self.synchronous!r}; use one of {_SYNCHRONOUS}")
        with self._guard("open"):
            # the detector opens the store on one thread and writes from its sink thread (one
            # thread at a time; see ``stream._pipeline``)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        self._conn = conn
        try:
            with self._guard("configure the connection"):
                conn.execute(f"PRAGMA page_size={_PAGE_BYTES}")  # before the first table
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
                # used by migration 6 to convert JSON features
                conn.create_function(
                    "fs_json_features_blob", 2, json_features_blob, deterministic=True
                )
                conn.create_function(
                    "fs_json_feature_names", 1, json_feature_names, deterministic=True
                )
            self._migrate(conn)
            with self._guard("read table transactions_enriched"):
                row = conn.execute("SELECT max(rowid) FROM transactions_enriched").fetchone()
                self._rows_before = int(row[0] or 0)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the pending migrations, all in one transaction (safe against a concurrent open)."""
        with self._guard("migrate table schema_migrations"):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(CREATE_MIGRATIONS_TABLE)
            try:
                apply_migrations(
                    conn.execute,
                    MIGRATIONS,
                    placeholder="?",
                    store=f"SQLite store {self.path}",
                    upgrade_hint="upgrade fraudstream or use another file",
                )
            except StoreError:
                conn.rollback()
                raise
            conn.commit()

    def schema_version(self) -> int:
        """The highest applied migration."""
        with self._guard("read table schema_migrations"):
            row = self._connection().execute("SELECT max(version) FROM schema_migrations")
            version = row.fetchone()[0]
        return int(version or 0)

    def write(self, batch: ScoredBatch) -> None:
        """Enriched rows for every transaction, alerts for review/block rows (until ``flush``).

        A row whose ``tx_id`` is stored with other content is not stored (nor its alert) and is
        reported by :meth:`take_rejected` once flushed; an identical one is skipped silently.
        """
        if len(batch) == 0:
            return
        alerts = alert_rows(batch)
        with self._guard("insert into table transactions_enriched"):
            block = self._rows_before // _BLOCK_ROWS
            flat = enriched_flat(batch, self._feature_order(batch), ingest_block=block)
            n = len(batch)
            self._rows_before += n
            conn = self._begin()
            before = conn.total_changes
            _insert_flat(conn, _INSERT_ENRICHED, ENRICHED_WIDTH, flat, _ROWS_PER_INSERT)
            ignored = n - (conn.total_changes - before)
        shadow = shadow_rows(batch)
        if ignored:  # a redelivery, or a conflicting duplicate: compare the content
            conflicts = self._conflicts(batch)
            if conflicts:
                index = batch.alert_index().tolist()
                alerts = [a for a, i in zip(alerts, index, strict=True) if i not in conflicts]
                shadow = [r for i, r in enumerate(shadow) if i not in conflicts]
        if alerts:
            with self._guard("insert into table fraud_alerts"):
                _insert_rows(self._begin(), _INSERT_ALERT, alerts)
        if shadow:
            with self._guard("insert into table shadow_decisions"):
                _insert_rows(self._begin(), _INSERT_SHADOW, shadow)

    def _conflicts(self, batch: ScoredBatch) -> set[int]:
        """Rows of ``batch`` whose ``tx_id`` is stored with other content (queued as rejects)."""
        ids = list(dict.fromkeys(batch.tx.tx_id))
        stored: dict[str, tuple[Any, ...]] = {}
        with self._guard("read table transactions_enriched"):
            conn = self._begin()
            for at in range(0, len(ids), _IDS_PER_LOOKUP):
                chunk = ids[at : at + _IDS_PER_LOOKUP]
                query = _STORED_CONTENT.format(", ".join("?" * len(chunk)))
                stored.update((row[0], row[1:]) for row in conn.execute(query, chunk))
        found: set[int] = set()
        for i, tx_id in enumerate(batch.tx.tx_id):
            row = stored[tx_id]
            if row[:-2] != content(batch, i):
                found.add(i)
                reason = conflict_reason(tx_id, int(row[-2]), int(row[-1]))
                self._pending_rejects.append(rejected_row(batch, i, reason))
        if found:
            log.warning("SQLite store %s: %d conflicting duplicate id(s)", self.path, len(found))
        return found

    def take_rejected(self) -> list[RejectedRow]:
        """Rows not stored as given by the flushes since the last call (conflicting ids)."""
        rejected, self._rejected = self._rejected, []
        return rejected

    def _feature_order(self, batch: ScoredBatch) -> npt.NDArray[np.intp] | None:
        """The permutation into the stored feature order of the batch's model version.

        The first batch of a version records its order in ``feature_sets`` (in the batch's
        transaction: a rollback forgets it, so it is re-read next time).
        """
        version, names = batch.model_version, batch.feature_names
        stored = self._feature_names.get(version)
        if stored is None:
            conn = self._begin()
            conn.execute(_FEATURE_SET, (version, _encode_names(names), _now_ms()))
            row = conn.execute(
                "SELECT feature_names FROM feature_sets WHERE model_version = ?", (version,)
            ).fetchone()
            stored = tuple(msgspec.json.decode(row[0]))
            self._feature_names[version] = stored
        return feature_order(stored, names, version, f"SQLite store {self.path}")

    def write_window_stats(self, stats: Sequence[WindowStats]) -> None:
        """Insert or replace the rows of these windows (keyed by ``window_end_ms``)."""
        if not stats:
            return
        rows = [
            (
                s.window_end_ms,
                s.window_ms,
                s.transactions,
                s.frauds,
                s.alerts,
                s.amount,
                s.fraud_amount,
            )
            for s in stats
        ]
        with self._guard("upsert into table window_stats"):
            self._begin().executemany(_UPSERT_WINDOW, rows)

    def write_drift(self, windows: Sequence[DriftWindow]) -> None:
        """Insert or replace the PSI rows of these drift windows."""
        if windows:
            with self._guard("upsert into table model_drift"):
                self._begin().executemany(_UPSERT_DRIFT, drift_rows(windows))

    def record_model_version(self, version: str, metrics_json: str) -> None:
        """Remember a model version and its metrics (JSON); the first sighting time is kept."""
        with self._guard("upsert into table model_versions"):
            self._begin().execute(_UPSERT_MODEL, (version, metrics_json, _now_ms()))

    def flush(self) -> None:
        """Commit everything written so far (and apply the retention when due)."""
        conn = self._connection()
        if (
            self.retention_days is not None
            and time.monotonic() - self._last_retention >= self.retention_every_s
        ):
            cutoff_ms = _now_ms() - int(self.retention_days * 86_400_000)
            with self._guard("retention delete from table transactions_enriched"):
                self._begin().execute(
                    "DELETE FROM transactions_enriched WHERE event_time_ms < ?", (cutoff_ms,)
                )
            self._last_retention = time.monotonic()
        if conn.in_transaction:
            with self._guard("commit"):
                conn.commit()
            self._uncheckpointed = True
        self._rejected += self._pending_rejects
        self._pending_rejects = []

    def maintain(self) -> None:
        """Checkpoint the write-ahead log if it holds commits and the last checkpoint is at least
        :data:`_IDLE_CHECKPOINT_S` old. The detector's sink thread calls this when it has no
        batch to write, so the copy and the sync happen between batches instead of inside one
        batch's commit; a checkpoint by the writer itself lets the next commit restart the log
        from its beginning (it stays small)."""
        now = time.monotonic()
        if (
            self._conn is None
            or not self._uncheckpointed
            or now - self._checkpointed_at < _IDLE_CHECKPOINT_S
        ):
            return
        with self._guard("checkpoint the write-ahead log"):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._uncheckpointed = False
        self._checkpointed_at = time.monotonic()

    def close(self) -> None:
        """Commit pending writes and close the connection (closed even if the commit fails)."""
        conn = self._conn
        if conn is None:
            return
        try:
            self.flush()
        finally:
            self._conn = None
            conn.close()

    def record_labels(self, labels: Sequence[LabelMessage]) -> int:
        """Insert (and commit, with anything written before) labels not yet recorded, by
        ``label_id``; the number newly inserted (re-recording one is a no-op)."""
        rows = label_rows(labels, _now_ms())
        if not rows:
            return 0
        with self._guard("insert into table labels"):
            conn = self._begin()
            before = conn.total_changes
            conn.executemany(INSERT_LABEL, rows)
            inserted = conn.total_changes - before
        self.flush()
        return inserted

    def lookup_transactions(self, tx_ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """``tx_id → (account, counterparty, event_time_ms)`` of the stored ones among ``tx_ids``
        (including rows written on this connection but not yet flushed)."""
        found: dict[str, tuple[str, str, int]] = {}
        with self._guard("read table transactions_enriched"):
            conn = self._connection()
            for chunk in chunks(tx_ids):
                for tx_id, account, counterparty, event_ms in conn.execute(
                    lookup_sql(len(chunk)), chunk
                ):
                    found[tx_id] = (account, counterparty, int(event_ms))
        return found

    def delete_enriched_before(self, cutoff_ms: int) -> int:
        """Delete (and commit) enriched rows with ``event_time_ms < cutoff_ms``; the number."""
        with self._guard("delete from table transactions_enriched"):
            cur = self._begin().execute(
                "DELETE FROM transactions_enriched WHERE event_time_ms < ?", (cutoff_ms,)
            )
            deleted = cur.rowcount
        self.flush()
        return int(deleted)

    def record_notification_failure(
        self, alert_id: str, channel: str, attempts: int, error: str, payload: str
    ) -> None:
        """Record (and commit) a notification that failed for good; the latest error wins."""
        with self._guard("upsert into table notification_failures"):
            self._begin().execute(
                _UPSERT_FAILURE, (alert_id, channel, attempts, error, payload, _now_ms())
            )
        self.flush()

    def record_notification_sent(self, alert_id: str, channel: str) -> None:
        """Record (and commit) that ``alert_id`` was delivered on ``channel``."""
        with self._guard("insert into table notifications_sent"):
            self._begin().execute(_INSERT_SENT, (alert_id, channel, _now_ms()))
        self.flush()

    def drift_alarms(self, after_ms: int) -> list[tuple[Any, ...]]:
        """The rows of the drift alarms raised at windows ending after ``after_ms``
        (``sinks._drift.RAISED_SQL``)."""
        with self._guard("read table model_drift"):
            rows = self._connection().execute(RAISED_SQL, (after_ms,)).fetchall()
        return [tuple(r) for r in rows]

    def notified_channels(self, alert_id: str) -> set[str]:
        """Channels on which ``alert_id`` was delivered or recorded as failed for good."""
        with self._guard("read tables notifications_sent/notification_failures"):
            rows = self._connection().execute(_NOTIFIED, (alert_id, alert_id)).fetchall()
        return {str(r[0]) for r in rows}

    def count_notification_failures(self) -> int:
        """Rows in ``notification_failures``."""
        with self._guard("count table notification_failures"):
            row = self._connection().execute("SELECT count(*) FROM notification_failures")
            return int(row.fetchone()[0])

    def count_transactions(self) -> int:
        """Rows in ``transactions_enriched``."""
        with self._guard("count table transactions_enriched"):
            row = self._connection().execute("SELECT count(*) FROM transactions_enriched")
            return int(row.fetchone()[0])

    def count_alerts_by_decision(self) -> dict[str, int]:
        """Alerts per decision: ``{"review": n, "block": m}``."""
        counts = dict.fromkeys(DECISIONS[1:], 0)
        with self._guard("count table fraud_alerts"):
            rows = self._connection().execute(
                "SELECT decision, count(*) FROM fraud_alerts GROUP BY decision"
            )
            for decision, n in rows:
                counts[decision] = int(n)
        return counts
