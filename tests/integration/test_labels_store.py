"""The stores' labels: ``record_labels`` (idempotent on ``label_id``), ``lookup_transactions``,
the migration that adds the ``labels`` table to an existing store, and the feedback query on the
real PostgreSQL; each on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fraudstream.dashboard import Database
from fraudstream.errors import StoreDataError, StoreError
from fraudstream.schema import LabelMessage
from fraudstream.sinks import (
    PostgresStore,
    SQLiteStore,
    Store,
    _postgres_schema,
    _sqlite_schema,
    open_store,
)

from ..unit.test_feedback import check_feedback, seed_feedback
from ..unit.test_sinks import WEIRD_IDS, make_scored
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

_COLUMNS = (
    "label_id, tx_id, account, counterparty, tx_time_ms, label, source, labelled_at_ms, "
    "alert_id, analyst, reason"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Database]]:
    """An open store and the dashboard's access to the same database."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'store.db'}", None
    else:
        url, schema = PG_URL, request.getfixturevalue("pg_schema")
    store = open_store(url, schema=schema)
    store.open()
    db = Database(url, schema=schema)
    try:
        yield store, db
    finally:
        store.close()
        db.close()


def _labels() -> list[LabelMessage]:
    return [
        LabelMessage(
            tx_id=WEIRD_IDS[1],
            label=1,
            labelled_at_ms=1_700_000_000_000,
            account=WEIRD_IDS[2],
            counterparty="M1",
            tx_time_ms=1_699_000_000_000,
            alert_id=WEIRD_IDS[1],
            source="chargeback",
            analyst=WEIRD_IDS[0],
            reason="card network: 'no authorisation'\n",
        ),
        LabelMessage(tx_id="t-2", label=0, labelled_at_ms=5),  # optional fields left out
        LabelMessage(tx_id="t-2", label=1, labelled_at_ms=5, source="dispute"),
    ]


def test_record_labels_is_idempotent_on_label_id(stored: tuple[Store, Database]) -> None:
    store, db = stored
    labels = _labels()
    before_ms = time.time_ns() // 1_000_000
    assert store.record_labels([*labels, labels[0]]) == 3  # a duplicate within the call
    assert store.record_labels(labels) == 0  # re-recorded: a no-op
    assert store.record_labels([]) == 0
    again = LabelMessage(tx_id="t-2", label=0, labelled_at_ms=6)  # another time: another label
    assert store.record_labels([labels[1], again]) == 1
    rows = db.rows(f"SELECT {_COLUMNS} FROM labels ORDER BY tx_id, labelled_at_ms, source")
    first = labels[0]
    assert rows == [
        (first.label_id, WEIRD_IDS[1], WEIRD_IDS[2], "M1", 1_699_000_000_000, 1, "chargeback")
        + (1_700_000_000_000, WEIRD_IDS[1], WEIRD_IDS[0], "card network: 'no authorisation'\n"),
        (labels[1].label_id, "t-2", None, None, None, 0, "analyst", 5, None, None, None),
        (labels[2].label_id, "t-2", None, None, None, 1, "dispute", 5, None, None, None),
        (again.label_id, "t-2", None, None, None, 0, "analyst", 6, None, None, None),
    ]
    (recorded,) = db.rows("SELECT min(recorded_at_ms), max(recorded_at_ms) FROM labels")
    assert before_ms <= recorded[0] <= recorded[1] <= time.time_ns() // 1_000_000


def test_lookup_transactions_in_batches(stored: tuple[Store, Database]) -> None:
    store, _ = stored
    ids = [f"tx-{i}" for i in range(1_200)] + WEIRD_IDS
    accounts = [f"C{i}" for i in range(len(ids))]
    batch = make_scored(ids, accounts=accounts)
    store.write(batch)
    store.flush()
    asked = ["nope", *reversed(ids), "tx-7", "tx-99999"]  # more than 500, absent and repeated
    found = store.lookup_transactions(asked)
    times = batch.tx.event_time_ms.tolist()
    assert found == {
        tx: (accounts[i], f"M{i}", times[i]) for i, tx in enumerate(ids)
    }  # every stored one, nothing else
    assert store.lookup_transactions([]) == {}
    assert store.lookup_transactions(["nope"]) == {}


def test_a_missing_labels_table_is_a_store_error_naming_it(
    stored: tuple[Store, Database],
) -> None:
    store, db = stored
    db.execute("DROP TABLE labels")
    with pytest.raises(StoreError, match="labels") as info:
        store.record_labels(_labels())
    assert not isinstance(info.value, StoreDataError)  # an outage, retrying may succeed


def test_labels_and_lookups_need_an_open_store(tmp_path: Path) -> None:
    for store in (SQLiteStore(tmp_path / "s.db"), PostgresStore(PG_URL)):
        with pytest.raises(StoreError, match="not open"):
            store.record_labels(_labels())
        with pytest.raises(StoreError, match="not open"):
            store.lookup_transactions(["a"])


def test_sqlite_migration_adds_labels_to_an_existing_store(tmp_path: Path) -> None:
    """A store at version 8 (before labels), holding a transaction, migrates to 9."""
    path = tmp_path / "old.db"
    old = SQLiteStore(path)
    old.open()
    old.write(make_scored(["kept"]))
    old.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE labels")
        conn.execute("DELETE FROM schema_migrations WHERE version = 9")
    store = SQLiteStore(path)
    store.open()
    try:
        assert store.schema_version() == len(_sqlite_schema.MIGRATIONS) >= 9  # labels: 9
        assert store.lookup_transactions(["kept"]) == {"kept": ("C0", "M0", 1_700_000_000_000)}
        assert store.record_labels(_labels()) == 3
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'labels'")
        assert "ix_labels_tx" in {name for (name,) in indexes}


def test_postgres_migration_adds_labels_to_an_existing_store(pg_schema: str) -> None:
    """A store at version 6 (before labels), holding a transaction, migrates to 7."""
    old = PostgresStore(PG_URL, schema=pg_schema)
    old.open()
    old.write(make_scored(["kept"]))
    old.close()
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}", autocommit=True) as c:
        c.execute("DROP TABLE labels")
        c.execute("DELETE FROM schema_migrations WHERE version = 7")
    store = PostgresStore(PG_URL, schema=pg_schema)
    store.open()
    try:
        assert store.schema_version() == len(_postgres_schema.MIGRATIONS) >= 7  # labels: 7
        assert store.lookup_transactions(["kept"]) == {"kept": ("C0", "M0", 1_700_000_000_000)}
        assert store.record_labels(_labels()) == 3
    finally:
        store.close()
    with psycopg.connect(PG_URL) as c:
        indexes = c.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'labels'",
            (pg_schema,),
        ).fetchall()
    assert "ix_labels_tx" in {name for (name,) in indexes}


def test_feedback_on_postgres(pg_schema: str) -> None:
    store = open_store(PG_URL, schema=pg_schema)
    store.open()
    db = Database(PG_URL, schema=pg_schema)
    try:
        seed_feedback(store, db)
        check_feedback(db)
    finally:
        store.close()
        db.close()
