"""The PostgreSQL store against the local PostgreSQL, and the contract both stores pass."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from fraudstream.errors import StoreError
from fraudstream.schema import WindowStats
from fraudstream.sinks import PostgresStore, SQLiteStore, Store, open_store
from fraudstream.sinks._postgres_schema import MIGRATIONS
from tests.unit.test_sinks import WEIRD_IDS, make_scored

from ._pg_util import PG_URL

pytestmark = pytest.mark.integration


def pg_query(schema: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}") as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def pg_store(pg_schema: str) -> Iterator[PostgresStore]:
    store = open_store(PG_URL, schema=pg_schema)
    assert isinstance(store, PostgresStore)
    store.open()
    yield store
    store.close()


# --- the contract both stores pass --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store: Store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        store.open()
        yield store
        store.close()
    else:
        yield request.getfixturevalue("pg_store")


def test_contract_idempotent_on_tx_id_across_flushes(any_store: Store) -> None:
    assert isinstance(any_store, Store)
    batch = make_scored(["a", "b", "c"], ["allow", "review", "block"])
    any_store.write(batch)
    any_store.flush()
    any_store.write(batch)
    any_store.write(make_scored(["c", "d"], ["block", "allow"]))
    any_store.flush()
    assert any_store.count_transactions() == 4
    assert any_store.count_alerts_by_decision() == {"review": 1, "block": 1}


def test_contract_duplicates_within_one_flush(any_store: Store) -> None:
    batch = make_scored(["x", "y"], ["block", "block"])
    for _ in range(3):
        any_store.write(batch)
    any_store.write_window_stats([WindowStats(2_000, 1_000, 5, 1, 1, 10.0, 2.0)])
    any_store.write_window_stats([WindowStats(2_000, 1_000, 6, 1, 1, 11.0, 2.0)])
    any_store.record_model_version("lr-1", '{"pr_auc": 0.5}')
    any_store.record_model_version("lr-1", '{"pr_auc": 0.6}')
    any_store.flush()
    assert any_store.count_transactions() == 2
    assert any_store.count_alerts_by_decision() == {"review": 0, "block": 2}


def test_contract_open_twice_and_reopen(any_store: Store) -> None:
    any_store.open()
    any_store.write(make_scored(["a"]))
    any_store.close()
    any_store.close()
    any_store.open()
    assert any_store.count_transactions() == 1


def test_contract_weird_values_round_trip(any_store: Store) -> None:
    amounts = [1e300, 0.01, 123456789012.34, 7.0]
    any_store.write(make_scored(WEIRD_IDS, ["block"] * 4, amounts=amounts, accounts=WEIRD_IDS))
    any_store.flush()
    assert any_store.count_transactions() == 4
    assert any_store.count_alerts_by_decision()["block"] == 4


# --- PostgreSQL specifics ---------------------------------------------------------------------


def test_migrations_are_idempotent_and_create_the_tables(pg_schema: str) -> None:
    for _ in range(2):
        store = PostgresStore(PG_URL, schema=pg_schema)
        store.open()
        store.open()
        assert store.schema_version() == len(MIGRATIONS)
        store.close()
    assert pg_query(pg_schema, "SELECT version FROM schema_migrations ORDER BY 1") == [
        (v,) for v in range(1, len(MIGRATIONS) + 1)
    ]
    tables = {
        r[0]
        for r in pg_query(
            pg_schema,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (pg_schema,),
        )
    }
    assert {"transactions_enriched", "fraud_alerts", "window_stats", "model_versions"} <= tables
    indexes = {
        r[0]
        for r in pg_query(
            pg_schema, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema,)
        )
    }
    assert {"ix_enriched_account", "ix_alerts_status", "ix_enriched_event_time"} <= indexes


def test_weird_values_are_stored_exactly(pg_store: PostgresStore, pg_schema: str) -> None:
    amounts = [1e300, 0.01, 123456789012.34, 7.0]
    batch = make_scored(
        WEIRD_IDS, ["allow", "block", "allow", "review"], amounts=amounts, accounts=WEIRD_IDS
    )
    pg_store.write(batch)
    pg_store.flush()
    rows = pg_query(
        pg_schema,
        "SELECT tx_id, account, amount, new_balance_orig, "
        "old_balance_orig FROM transactions_enriched",
    )
    assert sorted(rows) == sorted(
        (i, i, a, None, 500.0) for i, a in zip(WEIRD_IDS, amounts, strict=True)
    )
    alerts = pg_query(pg_schema, "SELECT alert_id, reasons, status FROM fraud_alerts ORDER BY 1")
    assert sorted(a[0] for a in alerts) == sorted([WEIRD_IDS[1], WEIRD_IDS[3]])
    assert all(a[2] == "open" and a[1][0]["contribution"] == 0.75 for a in alerts)
    assert pg_query(
        pg_schema, "SELECT count(*) FROM pg_tables WHERE tablename = %s", ("transactions_enriched",)
    ) != [(0,)]


def test_enriched_columns_and_real_array_features(pg_store: PostgresStore, pg_schema: str) -> None:
    batch = make_scored(["t0", "t1"], ["allow", "block"], labels=[-1, 1])
    batch.features[0, 0] = np.nan
    batch.features[0, 2] = np.inf
    pg_store.write(batch)
    pg_store.record_model_version("lr-test-1", json.dumps({"pr_auc": 0.5}))
    pg_store.flush()
    rows = pg_query(
        pg_schema,
        'SELECT tx_id, label, decision, features, "partition", "offset", processed_at_ms '
        "FROM transactions_enriched ORDER BY tx_id",
    )
    assert [r[:3] for r in rows] == [("t0", None, "allow"), ("t1", 1, "block")]
    assert rows[1][3] == pytest.approx(batch.features[1].tolist())
    assert math.isnan(rows[0][3][0]) and rows[0][3][2] == math.inf
    assert rows[1][4:] == (1, 41, 1_700_000_099_000)
    names = pg_query(pg_schema, "SELECT model_version, feature_names FROM feature_sets")
    assert names == [(batch.model_version, list(batch.feature_names))]
    named = pg_query(
        pg_schema,
        "SELECT t.features[array_position(f.feature_names, %s)] FROM transactions_enriched t "
        "JOIN feature_sets f USING (model_version) WHERE tx_id = 't1'",
        (batch.feature_names[1],),
    )
    assert named == [(pytest.approx(float(batch.features[1, 1])),)]
    assert pg_query(pg_schema, "SELECT metrics->>'pr_auc' FROM model_versions") == [("0.5",)]


def test_feature_order_of_a_version_is_kept(pg_store: PostgresStore, pg_schema: str) -> None:
    first = make_scored(["a"])
    pg_store.write(first)
    pg_store.flush()
    order = np.arange(len(first.feature_names))[::-1]
    second = make_scored(["b"])
    second.feature_names = tuple(first.feature_names[i] for i in order)
    second.features = second.features[:, order]
    pg_store.write(second)
    pg_store.flush()
    (stored,) = pg_query(pg_schema, "SELECT features FROM transactions_enriched WHERE tx_id='b'")
    assert stored[0] == pytest.approx(make_scored(["b"]).features[0].tolist())
    third = make_scored(["c"])
    third.feature_names = ("other",) + third.feature_names[1:]
    pg_store.write(third)
    with pytest.raises(StoreError, match="feature_sets"):
        pg_store.flush()


def test_redelivered_rows_mixed_with_new_ones_are_inserted_once(
    pg_store: PostgresStore, pg_schema: str
) -> None:
    pg_store.write(make_scored(["a", "b"], ["allow", "block"]))
    pg_store.flush()
    pg_store.write(make_scored(["b", "c", "a", "d"], ["block", "review", "allow", "allow"]))
    pg_store.write(make_scored(["d"]))
    pg_store.flush()
    assert pg_query(pg_schema, "SELECT tx_id FROM transactions_enriched ORDER BY 1") == [
        ("a",),
        ("b",),
        ("c",),
        ("d",),
    ]
    assert pg_store.count_alerts_by_decision() == {"review": 1, "block": 1}


def test_migration_3_converts_jsonb_features(pg_schema: str) -> None:
    old = PostgresStore(PG_URL, schema=pg_schema)
    old.open()  # at the latest version; rebuild version 2's table by hand to migrate it again
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}", autocommit=True) as c:
        c.execute("DROP TABLE transactions_enriched, feature_sets, notifications_sent")
        c.execute("DELETE FROM schema_migrations WHERE version >= 3")
        for statement in MIGRATIONS[0][:4]:
            c.execute(statement)
        c.execute(
            "INSERT INTO transactions_enriched VALUES ('x', 1, 'a', 'b', 'PAYMENT', 1.5, "
            "NULL, NULL, NULL, NULL, NULL, 1, %s::jsonb, 0.5, 'allow', 'v1', 0, 7, 9)",
            (json.dumps({"amount": 1.5, "tx_count_by_account_1h": None, "z": 3}),),
        )
    old.close()
    store = PostgresStore(PG_URL, schema=pg_schema)
    store.open()
    store.close()
    (names,) = pg_query(pg_schema, "SELECT feature_names FROM feature_sets")
    (features,) = pg_query(pg_schema, "SELECT features FROM transactions_enriched")
    values = dict(zip(names[0], features[0], strict=True))
    assert (
        values["amount"] == 1.5
        and values["z"] == 3
        and math.isnan(values["tx_count_by_account_1h"])
    )


def test_window_stats_upsert_and_first_seen_kept(pg_store: PostgresStore, pg_schema: str) -> None:
    pg_store.write_window_stats([WindowStats(1_000, 30_000, 5, 1, 2, 50.0, 10.0)])
    pg_store.record_model_version("m", "{}")
    pg_store.flush()
    first = pg_query(pg_schema, "SELECT first_seen_ms FROM model_versions")
    pg_store.write_window_stats([WindowStats(1_000, 30_000, 7, 1, 2, 70.0, 10.0)])
    pg_store.record_model_version("m", '{"a": 1}')
    pg_store.flush()
    assert pg_query(pg_schema, "SELECT transactions, amount FROM window_stats") == [(7, 70.0)]
    assert pg_query(pg_schema, "SELECT first_seen_ms FROM model_versions") == first


def test_failed_flush_discards_the_buffer_and_names_the_table(
    pg_store: PostgresStore, pg_schema: str
) -> None:
    pg_store.write(make_scored(["ok"]))
    pg_store.write(make_scored(["bad\x00id"]))  # PostgreSQL text cannot hold NUL
    with pytest.raises(StoreError, match="transactions_enriched"):
        pg_store.flush()
    assert pg_store.count_transactions() == 0
    pg_store.write(make_scored(["ok"]))
    pg_store.flush()
    assert pg_store.count_transactions() == 1


def test_retention_and_delete_before(pg_schema: str) -> None:
    store = PostgresStore(PG_URL, schema=pg_schema, retention_days=1)
    store.open()
    store.write(make_scored(["old"]))  # event time in 2023
    store.flush()
    assert store.count_transactions() == 0
    store.retention_days = None
    store.write(make_scored(["a", "b"]))
    store.flush()
    assert store.delete_enriched_before(1_700_000_000_500) == 1
    assert store.count_transactions() == 1
    store.close()


def test_unreachable_database_is_a_store_error_naming_the_url() -> None:
    store = PostgresStore("postgresql://postgres:pw@127.0.0.1:1/test", connect_timeout_s=1)
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1") as info:
        store.open()
    assert "pw" not in str(info.value)


def test_sqlite_and_postgres_agree_row_for_row(
    tmp_path: Path, pg_store: PostgresStore, pg_schema: str
) -> None:
    lite = SQLiteStore(tmp_path / "s.db")
    lite.open()
    batch = make_scored([f"t{i}" for i in range(50)], ["allow", "review"] * 25)
    stores: list[Callable[[], Store]] = [lambda: lite, lambda: pg_store]
    for get in stores:
        get().write(batch)
        get().flush()
    import sqlite3

    cols = "tx_id, account, amount, decision, score, label"
    a = (
        sqlite3.connect(tmp_path / "s.db")
        .execute(
            f"SELECT {cols} FROM transactions_enriched ORDER BY tx_id"  # noqa: S608
        )
        .fetchall()
    )
    b = pg_query(pg_schema, f"SELECT {cols} FROM transactions_enriched ORDER BY tx_id")  # noqa: S608
    assert a == b
    lite.close()
