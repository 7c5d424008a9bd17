"""Store errors on both stores: a refused row is dead-lettered and the rest stored; an outage
pauses and recovers; a conflicting duplicate id is reported, an identical redelivery is not."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from confluent_kafka import TopicPartition

from fraudstream.errors import StoreDataError
from fraudstream.model import Bundle
from fraudstream.sinks import AlertTopicSink, PostgresStore, SQLiteStore, Store
from fraudstream.stream import Job, SinkWorker, ensure_topics, make_producer
from fraudstream.stream._pipeline import DeadLetterSink
from tests.unit.test_sinks import make_scored

from ._kafka_util import read_topic
from ._pg_util import PG_URL
from .test_backpressure import PG, TcpProxy
from .test_backpressure import wait_for as _wait
from .test_sink_worker import _jobs

pytestmark = pytest.mark.integration


def _open(kind: str, tmp_path: Path, schema: str, url: str = PG_URL, **kw: float) -> Store:
    store: Store
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "store.db", **kw)  # type: ignore[arg-type]
    else:
        store = PostgresStore(url, schema=schema)
    store.open()
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _worker(client: dict[str, str], unique: str, store: Store) -> tuple[SinkWorker, str]:
    alerts, dlq = f"alerts-{unique}", f"dlq-{unique}"
    ensure_topics(client, [alerts, dlq], partitions=1)
    producer = make_producer(client)
    worker = SinkWorker(
        AlertTopicSink(producer, alerts),
        store,
        retry_initial_s=0.1,
        retry_max_s=0.5,
        dead_letters=DeadLetterSink(producer, dlq),
    )
    return worker, dlq


def _with_offsets(jobs: list[Job], topic: str) -> list[Job]:
    for job in jobs:
        assert job.scored is not None
        end = int(job.scored.offset.max()) + 1
        job.offsets = [TopicPartition(topic, 0, end)]
    return jobs


REFUSED = [
    ("sqlite", "C\ud800", "UnicodeEncodeError"),  # a lone surrogate cannot be encoded
    ("postgresql", "C\x00X", "CharacterNotInRepertoire"),  # PostgreSQL text holds no NUL
    ("postgresql", "C\ud800", "UnicodeEncodeError"),
]


@pytest.mark.parametrize(("kind", "account", "error"), REFUSED)
def test_a_refused_row_is_dead_lettered_and_the_rest_stored(
    kind: str,
    account: str,
    error: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    bundle: Bundle,
    pg_schema: str,
) -> None:
    store = _open(kind, tmp_path, pg_schema)
    worker, dlq = _worker(client, unique, store)
    jobs = _with_offsets(_jobs(bundle, 3, 40), f"tx-{unique}")
    bad = jobs[1].scored
    assert bad is not None
    bad.tx.account[7] = account
    bad_id = bad.tx.tx_id[7]
    try:
        for job in jobs:
            worker.submit(job, keep_alive=lambda: None)
        assert worker.wait_idle(timeout_s=120)
        assert worker.outage is None
        assert len(worker.completed()) == 3  # every batch durable: offsets may be committed
        assert worker.rejected == 1
    finally:
        worker.stop()
    assert store.count_transactions() == 119
    assert sum(store.count_alerts_by_decision().values()) == 119  # every row an alert but one
    dead = read_topic(client, dlq, expect=1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers() or [] if v is not None}
    assert "the store refused the row" in headers["fraudstream.error"]
    assert error in headers["fraudstream.error"]
    assert headers["fraudstream.source"] == f"tx-{unique}/0/{int(bad.offset[7])}"
    value = dead[0].value()
    assert value is not None
    assert json.loads(value)["txId"] == bad_id
    assert json.loads(value)["account"] == account
    store.close()


def test_sqlite_write_lock_held_elsewhere_is_an_outage_then_recovers(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    store = SQLiteStore(tmp_path / "store.db", busy_timeout_s=0.1)
    store.open()
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    worker, dlq = _worker(client, unique, store)
    try:
        worker.submit(_with_offsets(_jobs(bundle, 1, 30), "tx")[0], keep_alive=lambda: None)
        assert _wait(lambda: worker.outage is not None, 30)
        assert not isinstance(worker.outage, StoreDataError)
        assert "locked" in str(worker.outage)
        time.sleep(0.5)
        assert worker.in_flight() == 1 and not worker.completed()  # retried, nothing durable
        other.rollback()
        assert _wait(lambda: worker.outage is None and worker.in_flight() == 0, 60)
        assert worker.outage is None and len(worker.completed()) == 1
        assert worker.rejected == 0
    finally:
        worker.stop()
        other.close()
    assert store.count_transactions() == 30
    assert read_topic(client, dlq, expect=0, timeout_s=2) == []
    store.close()


def test_postgres_connection_loss_is_an_outage_then_recovers(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle, pg_schema: str
) -> None:
    proxy = TcpProxy(PG)
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", schema=pg_schema)
    store.connect_timeout_s = 1.0
    store.open()
    worker, dlq = _worker(client, unique, store)
    try:
        proxy.cut()
        worker.submit(_with_offsets(_jobs(bundle, 1, 30), "tx")[0], keep_alive=lambda: None)
        assert _wait(lambda: worker.outage is not None, 30)
        assert not isinstance(worker.outage, StoreDataError)
        proxy.restore()
        assert _wait(lambda: worker.outage is None and worker.in_flight() == 0, 60)
        assert worker.outage is None and len(worker.completed()) == 1
        assert worker.rejected == 0
    finally:
        worker.stop()
        proxy.close()
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}") as conn:
        row = conn.execute("SELECT count(*) FROM transactions_enriched").fetchone()
    assert row == (30,)
    assert read_topic(client, dlq, expect=0, timeout_s=2) == []


# --- conflicting duplicate ids, on the store alone ------------------------------------------


@pytest.fixture
def store(kind: str, tmp_path: Path, pg_schema: str) -> Iterator[Store]:
    s = _open(kind, tmp_path, pg_schema)
    yield s
    s.close()


def test_identical_redelivery_is_silent(store: Store) -> None:
    batch = make_scored(["a", "b", "c"], ["allow", "review", "block"])
    store.write(batch)
    store.flush()
    store.write(batch)  # the same batch again (a replay after a crash) and within one flush
    store.write(batch)
    store.flush()
    assert store.take_rejected() == []
    assert store.count_transactions() == 3


def test_conflicting_duplicate_is_reported_not_stored_and_raises_no_alert(store: Store) -> None:
    store.write(make_scored(["a", "b", "c"], ["allow", "allow", "block"]))
    store.flush()
    # "b" again at position 0: another account, amount and time; a block decision this time
    store.write(make_scored(["b", "d"], ["block", "review"], processed_at_ms=1_700_000_200_000))
    store.flush()
    rejected = store.take_rejected()
    assert [r.tx_id for r in rejected] == ["b"]
    assert "txId 'b' already stored with different content" in rejected[0].reason
    assert "stored from partition 1 offset 41" in rejected[0].reason
    assert (rejected[0].partition, rejected[0].offset) == (0, 40)
    assert json.loads(rejected[0].value)["account"] == "C0"
    assert store.take_rejected() == []  # taken once
    assert store.count_transactions() == 4
    assert store.count_alerts_by_decision() == {"review": 1, "block": 1}  # c and d, not b


def test_conflict_inside_one_batch_keeps_the_first(store: Store) -> None:
    batch = make_scored(["e", "e", "f"], ["review", "block", "allow"])
    store.write(batch)
    store.flush()
    rejected = store.take_rejected()
    assert [(r.tx_id, r.offset) for r in rejected] == [("e", 41)]
    assert store.count_transactions() == 2
    assert store.count_alerts_by_decision() == {"review": 1, "block": 0}


def test_a_refused_store_flush_raises_store_data_error(store: Store, kind: str) -> None:
    batch = make_scored(["g", "h"], accounts=["ok", "bad\ud800"])
    with pytest.raises(StoreDataError, match="cannot be stored as it is"):
        store.write(batch)
        store.flush()
    store.write(batch.take(np.array([0])))  # the store is usable afterwards
    store.flush()
    assert store.count_transactions() == 1
