"""Store outage through a TCP proxy the test cuts: no commit, paused partitions, no loss/dupes."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import psycopg
import pytest

from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import PostgresStore
from fraudstream.stream import (
    Detector,
    DetectorTopics,
    ensure_topics,
)

from ._kafka_util import build_detector, produce_raw
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

PG = ("127.0.0.1", 5432)


class TcpProxy:
    """Forwards a local port to ``upstream``; ``cut()`` drops every connection and refuses new
    ones until ``restore()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.cut_ = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        self.cut_.set()
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.cut_.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def rows(schema: str) -> tuple[int, int]:
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}") as conn:
        row = conn.execute(
            'SELECT count(*), count(DISTINCT ("partition", "offset")) FROM transactions_enriched'
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_for(cond: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def committed(client: dict[str, str], group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**client, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in range(2)]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def test_store_outage_pauses_and_resumes_without_loss_or_duplicates(
    client: dict[str, str],
    unique: str,
    bundle: Bundle,
    pg_schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fraudstream")
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    sim = PaySimSimulator(accounts=500, seed=9)
    first, second = sim.next_batch(1_000), sim.next_batch(2_000)
    group = f"g-{unique}"

    proxy = TcpProxy(PG)
    store = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        schema=pg_schema,
        connect_timeout_s=1.0,
    )
    store.open()
    detector = build_detector(
        client,
        topics,
        group,
        store,
        bundle,
        batch_max=400,
        store_retry_initial_s=0.2,
        store_retry_max_s=1.0,
    )
    stop = threading.Event()
    runner = threading.Thread(target=detector.run, args=(stop.is_set,), daemon=True)
    runner.start()
    try:
        produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in first])
        assert wait_for(lambda: rows(pg_schema)[0] == len(first), 60)
        assert wait_for(lambda: committed(client, group, topics.source) == len(first), 20)

        proxy.cut()
        produce_raw(
            client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in second]
        )
        assert wait_for(lambda: "store unavailable" in caplog.text, 30)
        time.sleep(3.0)  # several failed retries
        assert rows(pg_schema)[0] == len(first)
        assert committed(client, group, topics.source) == len(first)  # nothing committed

        proxy.restore()
        total = len(first) + len(second)
        assert wait_for(lambda: rows(pg_schema)[0] == total, 60)
        assert wait_for(lambda: committed(client, group, topics.source) == total, 30)
        assert "store back after" in caplog.text
    finally:
        stop.set()
        runner.join(30)
        proxy.close()
    assert rows(pg_schema) == (total, total)
    assert detector.stats.valid == total


def test_stop_during_outage_commits_nothing_and_a_restart_completes(
    client: dict[str, str],
    unique: str,
    bundle: Bundle,
    pg_schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fraudstream")
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    records = PaySimSimulator(accounts=300, seed=4).next_batch(1_500)
    group = f"g-{unique}"

    def detector(url: str) -> Detector:
        store = PostgresStore(url, schema=pg_schema, connect_timeout_s=1.0)
        store.open()
        return build_detector(
            client,
            topics,
            group,
            store,
            bundle,
            batch_max=500,
            store_retry_initial_s=0.2,
            store_retry_max_s=0.5,
        )

    proxy = TcpProxy(PG)
    first = detector(f"postgresql://postgres@127.0.0.1:{proxy.port}/test")
    proxy.cut()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            first.run(stop.is_set)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])
    assert wait_for(lambda: "store unavailable" in caplog.text, 60)
    stop.set()
    runner.join(30)
    proxy.close()
    assert errors and "not committed" in str(errors[0])
    assert committed(client, group, topics.source) == 0
    assert rows(pg_schema) == (0, 0)

    second = detector(PG_URL)
    second.run(lambda: False, idle_exit_s=4.0)
    second.store.close()
    assert rows(pg_schema) == (len(records), len(records))
    assert committed(client, group, topics.source) == len(records)
