from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from fraudstream.errors import ConfigError, KafkaError, SchemaError, SinkBackpressure, StoreError
from fraudstream.schema import DECISIONS, KINDS, ScoredBatch, TxBatch, WindowStats
from fraudstream.sinks import (
    Alert,
    AlertTopicSink,
    PostgresStore,
    Reason,
    SQLiteStore,
    Store,
    alert_payloads,
    decode_features,
    open_store,
)
from fraudstream.sinks._sqlite_schema import CREATE_MIGRATIONS_TABLE, MIGRATIONS

NAMES = ("amount_sum_by_account_1h", "tx_count_by_account_24h", "new_counterparty")
WEIRD_IDS = [
    'it\'s "quoted"',
    "'; DROP TABLE transactions_enriched;--",
    "zahlung-ü-😀-支付",
    "a\nb",
]


def make_scored(
    tx_ids: Sequence[str],
    decisions: Sequence[str] | None = None,
    *,
    amounts: Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
    accounts: Sequence[str] | None = None,
    names: tuple[str, ...] = NAMES,
    processed_at_ms: int = 1_700_000_099_000,
) -> ScoredBatch:
    n = len(tx_ids)
    decisions = decisions or ["allow"] * n
    dec = np.array([DECISIONS.index(d) for d in decisions], dtype=np.int8)
    features = (np.arange(n * len(names), dtype=np.float32).reshape(n, len(names)) + 0.1).astype(
        np.float32
    )
    tx = TxBatch(
        tx_id=list(tx_ids),
        event_time_ms=np.arange(n, dtype=np.int64) * 1000 + 1_700_000_000_000,
        account=list(accounts or [f"C{i}" for i in range(n)]),
        counterparty=[f"M{i}" for i in range(n)],
        kind=(np.arange(n) % len(KINDS)).astype(np.int8),
        amount=np.array(amounts or [100.0 + i for i in range(n)], dtype=np.float64),
        old_balance_orig=np.full(n, 500.0),
        new_balance_orig=np.full(n, np.nan),
        old_balance_dest=np.zeros(n),
        new_balance_dest=np.ones(n),
        label=np.array(labels or [-1] * n, dtype=np.int8),
        step=np.arange(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )
    reasons = [
        [(names[0], float(features[i, 0]), 0.75), (names[2], 1.0, 0.125)] if dec[i] else []
        for i in range(n)
    ]
    return ScoredBatch(
        tx=tx,
        feature_names=names,
        features=features,
        score=np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(n),
        decision=dec,
        reasons=reasons,
        model_version="lr-test-1",
        partition=(np.arange(n) % 3).astype(np.int32),
        offset=np.arange(n, dtype=np.int64) + 40,
        processed_at_ms=processed_at_ms,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "store.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    s.open()
    yield s
    s.close()


def query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read through a separate connection: sees only what was committed."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- SQLite store -------------------------------------------------------------------------------


def test_open_creates_parent_dir_and_migrations_are_idempotent(db_path: Path) -> None:
    for _ in range(2):
        s = SQLiteStore(db_path)
        s.open()
        s.open()  # no-op on an open store
        assert s.schema_version() == len(MIGRATIONS)
        s.close()
        s.close()
    versions = query(db_path, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(db_path, "PRAGMA page_size") == [(16_384,)]  # set before the first table
    tables = {r[0] for r in query(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"transactions_enriched", "fraud_alerts", "window_stats", "model_versions"} <= tables


def test_store_satisfies_the_protocol(store: SQLiteStore) -> None:
    assert isinstance(store, Store)


def test_write_is_idempotent_on_tx_id(store: SQLiteStore, db_path: Path) -> None:
    batch = make_scored(["a", "b", "c"], ["allow", "review", "block"])
    store.write(batch)
    store.flush()
    store.write(batch)
    store.write(make_scored(["c", "d"], ["block", "allow"]))
    store.flush()
    assert store.count_transactions() == 4
    assert store.count_alerts_by_decision() == {"review": 1, "block": 1}
    assert query(db_path, "SELECT count(*) FROM fraud_alerts") == [(2,)]


def test_rows_are_visible_to_others_only_after_flush(store: SQLiteStore, db_path: Path) -> None:
    store.write(make_scored(["a", "b"]))
    assert store.count_transactions() == 2
    assert query(db_path, "SELECT count(*) FROM transactions_enriched") == [(0,)]
    store.flush()
    assert query(db_path, "SELECT count(*) FROM transactions_enriched") == [(2,)]


def test_close_commits_pending_writes(db_path: Path) -> None:
    s = SQLiteStore(db_path)
    s.open()
    s.write(make_scored(["a"]))
    s.close()
    assert query(db_path, "SELECT tx_id FROM transactions_enriched") == [("a",)]


def test_enriched_row_columns(store: SQLiteStore, db_path: Path) -> None:
    batch = make_scored(["t0", "t1"], ["allow", "block"], labels=[-1, 1])
    store.write(batch)
    store.flush()
    rows = query(
        db_path,
        "SELECT tx_id, kind, label, new_balance_orig, old_balance_orig, decision, features, "
        '"partition", "offset", model_version, processed_at_ms, event_time_ms '
        "FROM transactions_enriched ORDER BY tx_id",
    )
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("t0", KINDS[0], None, None, 500.0, "allow"),
        ("t1", KINDS[1], 1, None, 500.0, "block"),
    ]
    (names,) = query(db_path, "SELECT feature_names FROM feature_sets")[0]
    assert json.loads(names) == list(NAMES)
    for i, row in enumerate(rows):
        features = decode_features(row[6], NAMES)
        assert features == {n: float(batch.features[i, j]) for j, n in enumerate(NAMES)}
        assert row[7:] == (i % 3, 40 + i, "lr-test-1", 1_700_000_099_000, batch.tx.event_time_ms[i])


def test_multi_row_inserts_store_every_row_in_its_own_columns(
    store: SQLiteStore, db_path: Path
) -> None:
    """Two full 128-row INSERTs and a 44-row tail: each row's values land in its own columns."""
    n = 300
    batch = make_scored([f"t{i:03d}" for i in range(n)], labels=[i % 2 for i in range(n)])
    store.write(batch)
    store.flush()
    rows = query(
        db_path,
        "SELECT tx_id, event_time_ms, account, counterparty, kind, amount, label, step, "
        'features, score, "partition", "offset", rules_fired, rule_set_version '
        "FROM transactions_enriched ORDER BY tx_id",
    )
    assert len(rows) == n
    for i, row in enumerate(rows):
        assert row[:8] == (
            f"t{i:03d}",
            1_700_000_000_000 + 1000 * i,
            f"C{i}",
            f"M{i}",
            KINDS[i % len(KINDS)],
            100.0 + i,
            i % 2,
            i,
        )
        assert row[8] == batch.features[i].astype("<f4").tobytes()
        assert row[9:] == (float(batch.score[i]), i % 3, 40 + i, None, None)


def test_alerts_only_for_review_and_block_with_reasons(store: SQLiteStore, db_path: Path) -> None:
    batch = make_scored(["a", "b", "c", "d"], ["allow", "review", "allow", "block"])
    store.write(batch)
    store.flush()
    rows = query(
        db_path,
        "SELECT alert_id, tx_id, decision, reasons, status, analyst, reviewed_at_ms, "
        "created_at_ms, account, amount FROM fraud_alerts ORDER BY alert_id",
    )
    assert [(r[0], r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        ("b", "b", "review", "open", None, None),
        ("d", "d", "block", "open", None, None),
    ]
    for row, i in zip(rows, (1, 3), strict=True):
        reasons = json.loads(row[3])
        assert reasons == [
            {"feature": f, "value": v, "contribution": c} for f, v, c in batch.reasons[i]
        ]
        assert row[7:] == (1_700_000_099_000, f"C{i}", 100.0 + i)


def test_alert_status_is_constrained(store: SQLiteStore, db_path: Path) -> None:
    store.write(make_scored(["a"], ["block"]))
    store.flush()
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE fraud_alerts SET status = 'maybe'")
    conn.close()


def test_weird_ids_and_huge_amounts_are_stored_exactly(store: SQLiteStore, db_path: Path) -> None:
    amounts = [1e15, 0.1, 123456789.123, 1e15 + 0.125]
    store.write(make_scored(WEIRD_IDS, ["block"] * 4, amounts=amounts, accounts=WEIRD_IDS))
    store.flush()
    assert store.count_transactions() == 4
    rows = query(db_path, "SELECT tx_id, account, amount FROM transactions_enriched")
    assert sorted(rows) == sorted(zip(WEIRD_IDS, WEIRD_IDS, amounts, strict=True))
    alerts = query(db_path, "SELECT alert_id, account, amount FROM fraud_alerts")
    assert sorted(alerts) == sorted(zip(WEIRD_IDS, WEIRD_IDS, amounts, strict=True))
    for tx_id in WEIRD_IDS:  # lookups by the exact id, bound as a parameter
        assert query(db_path, "SELECT 1 FROM transactions_enriched WHERE tx_id = ?", [tx_id])


def test_any_feature_names_are_recorded(store: SQLiteStore, db_path: Path) -> None:
    names = ('amount "quoted"', "back\\slash", "ünïcode")
    store.write(make_scored(["a"], names=names))
    store.flush()
    (stored,) = query(db_path, "SELECT feature_names FROM feature_sets")[0]
    assert json.loads(stored) == list(names)


def test_nan_and_inf_features_are_kept(store: SQLiteStore, db_path: Path) -> None:
    batch = make_scored(["a"])
    batch.features[0, 1] = np.nan
    batch.features[0, 2] = np.inf
    store.write(batch)
    store.flush()
    (features,) = query(db_path, "SELECT features FROM transactions_enriched")[0]
    values = decode_features(features, NAMES)
    assert np.isnan(values[NAMES[1]]) and values[NAMES[2]] == np.inf
    assert values[NAMES[0]] == float(batch.features[0, 0])


def test_a_version_keeps_its_first_feature_order(store: SQLiteStore, db_path: Path) -> None:
    store.write(make_scored(["a"]))
    swapped = make_scored(["b"], names=(NAMES[1], NAMES[0], NAMES[2]))
    store.write(swapped)
    store.flush()
    (features,) = query(db_path, "SELECT features FROM transactions_enriched WHERE tx_id = 'b'")[0]
    values = decode_features(features, NAMES)
    assert values == {n: float(swapped.features[0, swapped.feature_names.index(n)]) for n in NAMES}
    with pytest.raises(StoreError, match="feature_sets"):
        store.write(make_scored(["c"], names=("other", NAMES[1], NAMES[2])))


def test_window_stats_upsert(store: SQLiteStore, db_path: Path) -> None:
    first = WindowStats(1000, 30_000, 10, 1, 2, 500.0, 50.0)
    later = WindowStats(1000, 30_000, 12, 2, 3, 700.0, 90.0)
    other = WindowStats(2000, 30_000, 5, 0, 0, 10.0, 0.0)
    store.write_window_stats([first, other])
    store.write_window_stats([later])
    store.write_window_stats([])
    store.flush()
    rows = query(db_path, "SELECT * FROM window_stats ORDER BY window_end_ms")
    assert rows == [
        (1000, 30_000, 12, 2, 3, 700.0, 90.0),
        (2000, 30_000, 5, 0, 0, 10.0, 0.0),
    ]


def test_model_version_upsert_keeps_first_seen(store: SQLiteStore, db_path: Path) -> None:
    store.record_model_version("v1", '{"pr_auc": 0.5}')
    store.flush()
    (first_seen,) = query(db_path, "SELECT first_seen_ms FROM model_versions")[0]
    store.record_model_version("v1", '{"pr_auc": 0.7}')
    store.record_model_version("v2", "{}")
    store.flush()
    rows = query(db_path, "SELECT version, metrics, first_seen_ms FROM model_versions ORDER BY 1")
    assert rows[0] == ("v1", '{"pr_auc": 0.7}', first_seen)
    assert [r[0] for r in rows] == ["v1", "v2"]


def test_empty_batch_is_a_no_op(store: SQLiteStore) -> None:
    store.write(make_scored([]))
    store.flush()
    assert store.count_transactions() == 0
    assert store.count_alerts_by_decision() == {"review": 0, "block": 0}


def test_failed_write_rolls_back_the_batch_and_names_the_table(
    store: SQLiteStore, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER no_alerts BEFORE INSERT ON fraud_alerts "
        "BEGIN SELECT RAISE(ABORT, 'alerts refused'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="fraud_alerts.*alerts refused") as info:
        store.write(make_scored(["a", "b"], ["allow", "block"]))
    assert isinstance(info.value.__cause__, sqlite3.Error)
    store.flush()
    assert store.count_transactions() == 0


def test_errors_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        SQLiteStore(tmp_path / "x.db").write(make_scored(["a"]))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.db") as info:
        SQLiteStore(garbage).open()
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_newer_schema_is_refused(db_path: Path) -> None:
    s = SQLiteStore(db_path)
    s.open()
    s.close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 999"):
        SQLiteStore(db_path).open()


def test_mismatched_batch_columns_raise_schema_error(store: SQLiteStore) -> None:
    batch = make_scored(["a", "b"])
    batch.score = np.zeros(1)
    with pytest.raises(SchemaError, match="score has 1 rows"):
        store.write(batch)


# --- open_store ---------------------------------------------------------------------------------


def test_open_store_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///data/sub/fs.db")
    assert isinstance(s, SQLiteStore) and s.path == Path("data/sub/fs.db")
    s.open()
    s.close()
    assert (tmp_path / "data" / "sub" / "fs.db").exists()


def test_open_store_absolute_and_memory(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'abs.db'}")
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "abs.db"
    mem = open_store("sqlite:///:memory:")
    mem.open()
    mem.write(make_scored(["a"], ["review"]))
    assert mem.count_alerts_by_decision() == {"review": 1, "block": 0}
    mem.close()


@pytest.mark.parametrize(
    "url", ["postgresql://u@localhost/fs", "postgres://h/db", "postgresql+psycopg://h/db"]
)
def test_open_store_postgres_is_not_connected_until_open(url: str) -> None:
    store = open_store(url, schema="fs_x")
    assert isinstance(store, PostgresStore)
    assert store.url.split("://")[0] in ("postgresql", "postgres")
    with pytest.raises(StoreError, match="not open"):
        store.flush()


def test_postgres_store_never_shows_the_password() -> None:
    store = PostgresStore("postgresql://u:s3cret@h:5432/db")
    assert "s3cret" not in repr(store)


def test_postgres_store_rejects_bad_schema_names() -> None:
    with pytest.raises(StoreError, match="schema name"):
        PostgresStore("postgresql://h/db", schema='x"; DROP')


def test_sqlite_retention_deletes_old_enriched_rows(db_path: Path) -> None:
    s = SQLiteStore(db_path, retention_days=1)
    s.open()
    s.write(make_scored(["old", "old2"]))  # event times in 2023: older than a day
    s.flush()
    assert s.count_transactions() == 0
    s.close()


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://fs.db", "sqlite:///", "fs.db", ""])
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///") as info:
        open_store(url)
    assert repr(url) in str(info.value)


# --- alerts topic -------------------------------------------------------------------------------


def test_alert_payloads_only_for_review_and_block() -> None:
    batch = make_scored(
        ["a", "b", "c"], ["review", "allow", "block"], labels=[-1, 0, 1], accounts=["ü1", "x", "y"]
    )
    payloads = alert_payloads(batch)
    assert [k for k, _ in payloads] == ["ü1".encode(), b"y"]
    first = json.loads(payloads[0][1])
    assert list(first) == [
        "alert_id", "tx_id", "decision", "score", "reasons", "model_version", "event_time_ms",
        "created_at_ms", "account", "counterparty", "kind", "amount", "label",
        "rules_fired", "rules_shadow", "rule_set_version",
    ]  # fmt: skip
    assert [first[k] for k in ("rules_fired", "rules_shadow", "rule_set_version")] == [[], [], None]
    assert first["alert_id"] == first["tx_id"] == "a"
    assert first["decision"] == "review" and first["label"] is None
    assert first["kind"] == KINDS[0] and first["amount"] == 100.0
    assert first["created_at_ms"] == 1_700_000_099_000
    assert first["reasons"][0] == {
        "feature": NAMES[0],
        "value": 0.10000000149011612,
        "contribution": 0.75,
    }
    # every field in its place (the sink builds the message positionally)
    assert msgspec.json.decode(payloads[0][1], type=Alert) == Alert(
        alert_id="a",
        tx_id="a",
        decision="review",
        score=0.0,
        reasons=[Reason(NAMES[0], 0.10000000149011612, 0.75), Reason(NAMES[2], 1.0, 0.125)],
        model_version="lr-test-1",
        event_time_ms=1_700_000_000_000,
        created_at_ms=1_700_000_099_000,
        account="ü1",
        counterparty="M0",
        kind=KINDS[0],
        amount=100.0,
        label=None,
    )
    last = msgspec.json.decode(payloads[1][1], type=Alert)
    assert (last.decision, last.label, last.account, last.model_version) == (
        "block",
        1,
        "y",
        "lr-test-1",
    )
    assert alert_payloads(make_scored(["a", "b"])) == []


class FakeProducer:
    """Records produce calls; delivers on poll/flush, failing keys in ``fail_keys``."""

    def __init__(self, *, fail_keys: frozenset[bytes] = frozenset(), full_for: int = 0) -> None:
        self.fail_keys = fail_keys
        self.full_for = full_for
        self.pending: list[tuple[bytes, bytes, Callable[[object, object], None]]] = []
        self.delivered: list[tuple[str, bytes, bytes]] = []
        self.polls = 0
        self.stuck = False

    def produce(
        self, topic: str, *, value: bytes, key: bytes, on_delivery: Callable[[object, object], None]
    ) -> None:
        if self.full_for:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        self.topic = topic
        self.pending.append((key, value, on_delivery))

    def _deliver(self) -> None:
        for key, value, cb in self.pending:
            if key in self.fail_keys:
                cb("Broker: Unknown topic or partition", None)
            else:
                self.delivered.append((self.topic, key, value))
                cb(None, None)
        self.pending = []

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        if not self.stuck:
            self._deliver()
        return 0

    def flush(self, timeout: float = 0) -> int:
        if not self.stuck:
            self._deliver()
        return len(self.pending)


def test_alert_sink_delivers_and_flushes() -> None:
    producer = FakeProducer()
    sink = AlertTopicSink(producer, "fraud-alerts")
    sink.write(make_scored(["a", "b", "c"], ["block", "allow", "review"]))
    sink.flush()
    assert [(t, k) for t, k, _ in producer.delivered] == [
        ("fraud-alerts", b"C0"),
        ("fraud-alerts", b"C2"),
    ]


def test_alert_sink_delivery_failure_raises_on_flush_once() -> None:
    producer = FakeProducer(fail_keys=frozenset({b"C1"}))
    sink = AlertTopicSink(producer, "fraud-alerts")
    sink.write(make_scored(["a", "b"], ["block", "review"]))
    with pytest.raises(KafkaError, match=r"fraud-alerts: 1 alert\(s\) failed.*Unknown topic"):
        sink.flush()
    sink.flush()  # the failure was reported; nothing new failed


def test_alert_sink_retries_on_buffer_error() -> None:
    producer = FakeProducer(full_for=3)
    sink = AlertTopicSink(producer, "fraud-alerts")
    sink.write(make_scored(["a"], ["block"]))
    sink.flush()
    assert len(producer.delivered) == 1 and producer.polls >= 3


def test_alert_sink_backpressure_when_queue_stays_full() -> None:
    producer = FakeProducer(full_for=10**9)
    sink = AlertTopicSink(producer, "fraud-alerts", produce_timeout_s=0.0)
    with pytest.raises(SinkBackpressure, match="queue stayed full"):
        sink.write(make_scored(["a"], ["block"]))


def test_alert_sink_undelivered_at_timeout_is_backpressure() -> None:
    producer = FakeProducer()
    producer.stuck = True
    sink = AlertTopicSink(producer, "fraud-alerts")
    sink.write(make_scored(["a"], ["review"]))
    with pytest.raises(SinkBackpressure, match="1 alert\\(s\\) still undelivered"):
        sink.flush(timeout_s=0.01)
    producer.stuck = False
    sink.flush()
    assert len(producer.delivered) == 1


def test_alert_sink_wraps_produce_errors() -> None:
    class Broken(FakeProducer):
        def produce(self, topic: str, **kwargs: Any) -> None:
            raise RuntimeError("Broker: Message size too large")

    sink = AlertTopicSink(Broken(), "fraud-alerts")
    with pytest.raises(KafkaError, match="fraud-alerts.*too large"):
        sink.write(make_scored(["a"], ["block"]))


# --- the PostgreSQL binary COPY stream, parsed back without a server ------------------------------


def parse_binary_copy(stream: bytes) -> list[list[bytes | None]]:
    """The tuples of a binary ``COPY`` stream as raw field values (``None`` for NULL)."""
    import struct

    assert stream.startswith(b"PGCOPY\n\xff\r\n\x00") and stream.endswith(b"\xff\xff")
    at, rows = 19, []
    while stream[at : at + 2] != b"\xff\xff":
        (ncols,) = struct.unpack_from(">h", stream, at)
        at += 2
        row: list[bytes | None] = []
        for _ in range(ncols):
            (size,) = struct.unpack_from(">i", stream, at)
            at += 4
            row.append(None if size < 0 else stream[at : at + size])
            at += max(size, 0)
        rows.append(row)
    assert at == len(stream) - 2
    return rows


def test_binary_copy_stream_holds_every_value_exactly() -> None:
    import struct

    from fraudstream.sinks._pgcopy import ENRICHED_COPY_COLUMNS, binary_copy, enriched_copy

    batch = make_scored(WEIRD_IDS, ["allow", "block", "review", "allow"], labels=[-1, 1, 0, -1])
    batch.score[2] = np.nan
    batch.features[3, 1] = np.inf
    batch.rule_set_version = 3
    batch.rules_fired = [(), ("mules", "big"), (), ()]
    batch.rules_shadow = [("s1",), (), (), ()]
    columns = [c.strip().strip('"') for c in ENRICHED_COPY_COLUMNS.split(",")]
    order = np.array([2, 0, 1])
    rows = parse_binary_copy(binary_copy([enriched_copy(batch), enriched_copy(batch, order)]))
    assert len(rows) == 8 and all(len(r) == len(columns) == 22 for r in rows)
    for i, row in enumerate(rows[:4]):
        v = dict(zip(columns, row, strict=True))
        assert v["rule_set_version"] == struct.pack(">i", 3)
        assert v["rules_fired"] == (b'["mules","big"]' if i == 1 else None)
        assert v["rules_shadow"] == (b'["s1"]' if i == 0 else None)
        assert v["tx_id"] == WEIRD_IDS[i].encode() and v["account"] == f"C{i}".encode()
        assert v["kind"] == KINDS[i].encode() and v["model_version"] == b"lr-test-1"
        assert v["decision"] == DECISIONS[batch.decision[i]].encode()
        assert struct.unpack(">q", v["event_time_ms"] or b"")[0] == batch.tx.event_time_ms[i]
        assert struct.unpack(">d", v["amount"] or b"")[0] == batch.tx.amount[i]
        assert v["new_balance_orig"] is None  # NaN balance: NULL
        assert v["label"] == (None if i in (0, 3) else struct.pack(">h", batch.tx.label[i]))
        assert v["score"] == (None if i == 2 else struct.pack(">d", batch.score[i]))
        assert struct.unpack(">i", v["partition"] or b"")[0] == batch.partition[i]
        head = struct.unpack_from(">5i", v["features"] or b"")
        assert head == (1, 0, 700, 3, 1)  # one dimension, no NULLs, real, 3 values from 1
        values = struct.unpack_from(">" + "i f" * 3, v["features"] or b"", 20)[1::2]
        assert values == tuple(batch.features[i].tolist())
        permuted = struct.unpack_from(">" + "i f" * 3, rows[4 + i][12] or b"", 20)[1::2]
        assert permuted == tuple(batch.features[i, order].tolist())


def test_json_features_of_version_5_become_float32_blobs(db_path: Path) -> None:
    """Migration 6 converts stored JSON feature objects (null → NaN) and records their names."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    conn.execute(CREATE_MIGRATIONS_TABLE)
    for version, statements in enumerate(MIGRATIONS[:5], start=1):
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    old = [("a", '{"x":1.5,"y":null}', "v1"), ("b", '{"x":-2.0,"y":0.25}', "v1")]
    for tx, features, version in old:
        conn.execute(
            "INSERT INTO transactions_enriched VALUES "
            "(?, 1, 'C1', 'C2', 'PAYMENT', 1.0, NULL, NULL, NULL, NULL, NULL, 1, ?, 0.1, "
            "'allow', ?, 0, 0, 7)",
            (tx, features, version),
        )
    conn.commit()
    conn.close()
    store = SQLiteStore(db_path)
    store.open()
    store.close()
    rows = query(db_path, "SELECT tx_id, typeof(features), features FROM transactions_enriched")
    assert [(tx, kind) for tx, kind, _ in rows] == [("a", "blob"), ("b", "blob")]
    # migration 7: the rows stored before it form insertion block 0
    assert query(db_path, "SELECT ingest_block FROM transactions_enriched") == [(0,), (0,)]
    (names,) = query(db_path, "SELECT feature_names FROM feature_sets WHERE model_version = 'v1'")[
        0
    ]
    assert json.loads(names) == ["x", "y"]
    a = decode_features(rows[0][2], ["x", "y"])
    assert a["x"] == 1.5 and np.isnan(a["y"])
    assert decode_features(rows[1][2], ["x", "y"]) == {"x": -2.0, "y": 0.25}


def _wal_frames(path: Path) -> tuple[int, int]:
    """(frames in the write-ahead log, frames of them already in the database file)."""
    conn = sqlite3.connect(path)
    try:
        _busy, log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return int(log_frames), int(done)


def test_maintain_checkpoints_the_log_between_batches_and_the_log_restarts(
    store: SQLiteStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits leave their pages in the log (the writer no longer checkpoints every 1,000
    pages); ``maintain`` copies them all, so the next commit writes the log from its start."""
    import fraudstream.sinks._sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_IDLE_CHECKPOINT_S", 3_600.0)
    for b in range(40):  # well past SQLite's default autocheckpoint of 1,000 pages
        store.write(make_scored([f"t{b}-{i}" for i in range(500)]))
        store.flush()
    assert store._conn is not None
    frames = int(store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    assert frames > 1_000
    store._checkpointed_at = -1e9  # long ago
    store.maintain()  # due: copies every frame
    store.write(make_scored(["after-0"]))
    store.flush()
    log_frames, done = _wal_frames(db_path)
    assert log_frames < 20  # the commit after the checkpoint restarted the log
    store.write(make_scored(["after-1"]))
    store.flush()
    store.maintain()  # not due again within _IDLE_CHECKPOINT_S: nothing copied
    assert store._uncheckpointed


def test_the_sink_thread_checkpoints_when_it_has_nothing_to_write(db_path: Path) -> None:
    """The detector's output thread calls ``maintain`` once its queue is empty."""
    from types import SimpleNamespace

    from confluent_kafka import Producer

    from fraudstream.sinks import AlertTopicSink
    from fraudstream.stream import SinkWorker
    from fraudstream.stream._pipeline import Job

    store = SQLiteStore(db_path)
    store.open()
    store._checkpointed_at = -1e9  # due at the first idle moment
    worker = SinkWorker(AlertTopicSink(Producer({"bootstrap.servers": "127.0.0.1:9"}), "a"), store)
    try:
        model = SimpleNamespace(version="m1", metrics={})
        job = Job(scored=make_scored(["x1", "x2"]), windows=[], offsets=[], bundle=model,  # type: ignore[arg-type]
                  produced_ms=np.zeros(2, np.int64))  # fmt: skip
        worker.submit(job, keep_alive=lambda: None)
        assert worker.wait_idle(timeout_s=10)
        deadline = time.monotonic() + 5
        while store._uncheckpointed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not store._uncheckpointed
        assert query(db_path, "SELECT count(*) FROM transactions_enriched") == [(2,)]
    finally:
        worker.stop()
        store.close()
