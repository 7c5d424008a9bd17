"""The dashboard's queries on the real PostgreSQL (same checks as the SQLite unit test), and the
detector group's lag read from the real broker."""

from __future__ import annotations

from confluent_kafka import Producer, TopicPartition

from fraudstream.broker import free_port
from fraudstream.dashboard import Database, consumer_lag
from fraudstream.sinks import open_store
from fraudstream.stream import ensure_topics, make_consumer

from ..unit.test_dashboard_queries import check_queries, seed_events, seed_known
from ._pg_util import PG_URL


def test_queries_on_postgres(pg_schema: str) -> None:
    store = open_store(PG_URL, schema=pg_schema)
    store.open()
    seed_known(store)
    store.close()
    seed_events(PG_URL, pg_schema)
    db = Database(PG_URL, schema=pg_schema)
    try:
        check_queries(db)
    finally:
        db.close()


def test_lag_is_high_watermark_minus_committed(client: dict[str, str], unique: str) -> None:
    topic, group = f"tx-{unique}", f"detector-{unique}"
    ensure_topics(client, [topic], partitions=2)
    producer = Producer(client)
    for i in range(10):
        producer.produce(topic, value=b"x", partition=i % 2)
        # one record batch per message: the embedded broker (Tansu) reports a high watermark of
        # the last batch's base offset + 1, so multi-message batches would read as less lag
        assert producer.flush(30) == 0
    lag = consumer_lag(client, group, topic)
    assert lag.error is None and lag.partitions == {0: 5, 1: 5}  # nothing committed yet
    consumer = make_consumer(client, group)
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    finally:
        consumer.close()
    lag = consumer_lag(client, group, topic)
    assert lag.partitions == {0: 2, 1: 5} and lag.total == 7


def test_lag_unknown_when_the_broker_is_down(unique: str) -> None:
    lag = consumer_lag({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "g", "t")
    assert lag.total is None and lag.error is not None and "unreachable" in lag.error


def test_lag_for_a_missing_topic(client: dict[str, str], unique: str) -> None:
    lag = consumer_lag(client, f"g-{unique}", f"missing-{unique}")
    assert lag.total is None and lag.error is not None
