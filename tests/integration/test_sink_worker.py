"""The detector's output thread: jobs waiting behind a busy thread share one store commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fraudstream.errors import SinkBackpressure
from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle
from fraudstream.schema import ScoredBatch, paysim_to_batch
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import AlertTopicSink, SQLiteStore
from fraudstream.stream import Job, SinkWorker, ensure_topics, make_producer

from ._kafka_util import read_topic

pytestmark = pytest.mark.integration


class _GatedStore(SQLiteStore):
    """A real SQLite store whose first write waits until the test opens the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.commits = 0

    def write(self, batch: ScoredBatch) -> None:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        super().write(batch)

    def flush(self) -> None:
        self.commits += 1
        super().flush()


def _jobs(bundle: Bundle, n_jobs: int, rows: int) -> list[Job]:
    records = PaySimSimulator(accounts=300, seed=5).next_batch(n_jobs * rows)
    engine = FeatureEngine(mode=bundle.mode)  # type: ignore[arg-type]
    jobs = []
    for k in range(n_jobs):
        part = records[k * rows : (k + 1) * rows]
        tx = paysim_to_batch(part, [f"t/0/{k * rows + i}" for i in range(rows)])
        x = engine.update_and_extract(tx)
        score = bundle.score(x)
        scored = ScoredBatch(
            tx=tx,
            feature_names=bundle.feature_names,
            features=x,
            score=score,
            decision=np.full(rows, 2, dtype=np.int8),  # every row an alert
            reasons=[[] for _ in range(rows)],
            model_version=bundle.version,
            partition=np.zeros(rows, dtype=np.int32),
            offset=np.arange(k * rows, (k + 1) * rows, dtype=np.int64),
            processed_at_ms=int(time.time() * 1000),
        )
        jobs.append(Job(scored, [], [], bundle, np.zeros(rows, dtype=np.int64)))
    return jobs


def test_jobs_waiting_behind_a_busy_thread_are_made_durable_together(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    topic = f"alerts-{unique}"
    ensure_topics(client, [topic], partitions=1)
    store = _GatedStore(tmp_path / "store.db")
    store.open()
    worker = SinkWorker(AlertTopicSink(make_producer(client), topic), store, max_waiting=3)
    jobs = _jobs(bundle, 4, 50)
    try:
        worker.submit(jobs[0], keep_alive=lambda: None)
        assert store.entered.wait(30)  # the thread is busy with the first job
        for job in jobs[1:]:
            worker.submit(job, keep_alive=lambda: None)
        store.gate.set()
        assert worker.wait_idle(timeout_s=30)
        done = worker.completed()
    finally:
        worker.stop()
    assert [id(j) for j in done] == [id(j) for j in jobs]  # all durable, in submission order
    assert store.commits == 2  # the first job alone, the three that waited in one commit
    assert worker.clock.counts["store_commit"] == 2
    assert len({j.durable_ms for j in done[1:]}) == 1
    assert store.count_transactions() == 200
    assert store.count_alerts_by_decision()["block"] == 200
    assert len(read_topic(client, topic, expect=200)) == 200
    store.close()


class _CloggedProducer:
    """A producer whose local queue is full until ``open`` is set (then it accepts all)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.produced = 0

    def produce(self, topic: str, **_kwargs: object) -> None:
        if not self.open.is_set():
            raise BufferError("Local: Queue full")
        self.produced += 1

    def poll(self, timeout: float = 0) -> int:
        time.sleep(min(timeout, 0.01))
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def test_a_full_alerts_queue_pauses_the_output_until_it_drains(
    tmp_path: Path, bundle: Bundle
) -> None:
    """The alerts producer's queue stays full: the job waits (``outage`` set, so the detector
    pauses consumption), nothing is lost or committed, and it completes once the queue drains."""
    store = SQLiteStore(tmp_path / "store.db")
    store.open()
    producer = _CloggedProducer()
    sink = AlertTopicSink(producer, "alerts", produce_timeout_s=0.2)
    worker = SinkWorker(sink, store, max_waiting=3)
    job = _jobs(bundle, 1, 20)[0]
    try:
        worker.submit(job, keep_alive=lambda: None)
        deadline = time.monotonic() + 10
        while worker.outage is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert isinstance(worker.outage, SinkBackpressure)
        assert not worker.wait_idle(timeout_s=0.5)  # still waiting, nothing durable
        assert worker.completed() == [] and store.count_transactions() == 0
        producer.open.set()
        deadline = time.monotonic() + 10
        while worker.outage is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.wait_idle(timeout_s=10)
        assert [id(j) for j in worker.completed()] == [id(job)]
    finally:
        worker.stop()
    assert worker.outage is None
    assert producer.produced == 20 and store.count_transactions() == 20
    store.close()
