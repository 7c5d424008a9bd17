"""End-to-end runs on a real broker: sustained throughput and live event-to-decision latency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message

from fraudstream.config import SimulateSettings
from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import (
    DEFAULT_FETCH_WAIT_MS,
    PAYSIM,
    Detector,
    DetectorTopics,
    Job,
    LagWatchdog,
    SlidingWindow,
    StateRestorer,
    ensure_topics,
    make_consumer,
    make_producer,
)

__all__ = ["BenchRun", "live_latency", "prefill", "soak", "sustained_throughput"]

#: Records the live runs send and see processed before the timed load (excluded from latency).
_WARM_UP_RECORDS = 200
#: ... and the first 2 s of the timed load: the simulator's idempotent producer needs about a
#: second to reach steady delivery (on Tansu its first deliveries take 130-500 ms, then 3-6 ms).
_LOAD_WARM_UP_MS = 2_000


@dataclass
class _Timeline:
    first_s: float | None = None
    last_s: float = 0.0
    processed: int = 0
    batches: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    produced_ms: list[int] = field(default_factory=list)
    # both threads' stage times from the first batch to the last durable one
    consuming_s: dict[str, float] = field(default_factory=dict)
    output_s: dict[str, float] = field(default_factory=dict)


class _TimedDetector(Detector):
    """The real detector, recording when each batch is durable and how old its records are."""

    timeline: _Timeline
    assigned: threading.Event
    max_lag: int = 0

    def _watch(self) -> None:
        super()._watch()
        self.max_lag = max(self.max_lag, self.stats.lag or 0)

    def _next_batch(self) -> list[Message]:
        msgs = super()._next_batch()
        # asked on this thread: the client is not to be called while another thread consumes
        if not self.assigned.is_set() and self.consumer.assignment():
            self.assigned.set()
        return msgs

    def process(self, msgs: list[Message]) -> None:
        if self.timeline.first_s is None:
            self.timeline.first_s = time.perf_counter()
            # the timed window starts here: not the group join and the wait for a first batch
            self.stats.clock.reset()
            self.stats.sink_clock.reset()
        super().process(msgs)

    def on_durable(self, job: Job) -> None:
        self.timeline.last_s = time.perf_counter()
        self.timeline.processed += len(job.produced_ms)
        self.timeline.batches.append(len(job.produced_ms))
        self.timeline.latency_ms.extend((job.durable_ms - job.produced_ms).tolist())
        self.timeline.produced_ms.extend(job.produced_ms.tolist())
        self.timeline.consuming_s = dict(self.stats.clock.seconds)
        self.timeline.output_s = dict(self.stats.sink_clock.seconds)


@dataclass(frozen=True)
class BenchRun:
    """Where a benchmark run writes: broker client settings, topic prefix, store, model."""

    client: dict[str, Any]
    prefix: str
    store_url: str
    bundle: Bundle
    partitions: int = 4
    batch_max: int = 20_000

    def topics(self, name: str) -> DetectorTopics:
        return DetectorTopics(
            f"{self.prefix}{name}", f"{self.prefix}{name}-alerts", f"{self.prefix}{name}-dlq"
        )

    def detector(self, topics: DetectorTopics, group: str) -> _TimedDetector:
        ensure_topics(
            self.client, [topics.source, topics.alerts, topics.dlq], partitions=self.partitions
        )
        store = open_store(self.store_url)
        store.open()
        watchdog = LagWatchdog(topics.source)

        def consumer(fetch_wait_ms: int) -> Consumer:
            conf: dict[str, Any] = {
                "fetch.wait.max.ms": fetch_wait_ms,
                "statistics.interval.ms": 1000,
                "stats_cb": watchdog.on_stats,
            }
            return make_consumer(self.client, group, **conf)

        det = _TimedDetector(
            consumer=consumer(DEFAULT_FETCH_WAIT_MS),
            producer=make_producer(self.client),
            topics=topics,
            store=store,
            bundle=self.bundle,
            engine=FeatureEngine(mode=self.bundle.mode),  # type: ignore[arg-type]
            window=SlidingWindow(),
            batch_max=self.batch_max,
            restorer=StateRestorer(self.client, topics.source, PAYSIM.decode_messages),
            watchdog=watchdog,
            reconnect=consumer,
        )
        det.timeline = _Timeline()
        det.assigned = threading.Event()
        return det


def prefill(run: BenchRun, topic: str, count: int, *, accounts: int, seed: int = 1) -> float:
    """Produce ``count`` simulated transactions as fast as possible; returns tx/s produced."""
    ensure_topics(run.client, [topic], partitions=run.partitions)
    producer = make_producer(run.client)
    sim = PaySimSimulator(accounts=accounts, seed=seed)
    started = time.perf_counter()
    for start in range(0, count, 50_000):
        for rec in sim.next_batch(min(50_000, count - start)):
            while True:
                try:
                    producer.produce(topic, value=encode_paysim(rec), key=rec.nameOrig.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError(f"prefill of {topic} did not complete")
    return count / (time.perf_counter() - started)


def sustained_throughput(run: BenchRun, count: int, *, accounts: int) -> dict[str, Any]:
    """Pre-fill a topic, then time the real detector from its first batch to its last."""
    topics = run.topics("sustained")
    produced_per_s = prefill(run, topics.source, count, accounts=accounts)
    det = run.detector(topics, f"{run.prefix}sustained")
    stats = det.run(lambda: det.timeline.processed >= count, idle_exit_s=15.0)
    t = det.timeline
    elapsed = t.last_s - (t.first_s or t.last_s)
    commits = stats.sink_clock.counts.get("store_commit", 0)
    return {
        "transactions": float(t.processed),
        "seconds": elapsed,
        "throughput_tx_per_s": t.processed / elapsed if elapsed > 0 else 0.0,
        "prefill_tx_per_s": produced_per_s,
        "mean_batch": float(np.mean(t.batches)) if t.batches else 0.0,
        "mean_batches_per_commit": len(t.batches) / commits if commits else 0.0,
        # where the two threads spent the timed window (wall µs per transaction): the profile
        # in place, from the first batch to the last durable one
        "consuming_thread_us_per_tx": _per_tx(t.consuming_s, t.processed),
        "output_thread_us_per_tx": _per_tx(t.output_s, t.processed),
    }


def _per_tx(seconds: dict[str, float], transactions: int) -> dict[str, float]:
    return {k: v * 1e6 / transactions for k, v in seconds.items()} if transactions else {}


def live_latency(
    run: BenchRun, rate: float, duration_s: float, *, accounts: int
) -> dict[str, float]:
    """Simulator (own process) at ``rate`` while the detector scores; latency percentiles.

    Latency is from the record's Kafka timestamp (set when the simulator produced it) to the end
    of the batch that made its decision durable (alerts flushed, store and offsets committed).
    Not counted: a first small load (:data:`_WARM_UP_RECORDS`, processed before the timed load
    starts) and the records produced in the timed load's first :data:`_LOAD_WARM_UP_MS`.
    """
    topics = run.topics(f"live{int(rate)}")
    det = run.detector(topics, f"{run.prefix}live{int(rate)}")
    sim_done = threading.Event()
    threading.Thread(
        target=_simulate_when_assigned,
        args=(det, run, topics.source, rate, duration_s, accounts, sim_done),
        daemon=True,
    ).start()
    idle_since = [time.monotonic()]

    def should_stop() -> bool:
        if not sim_done.is_set():
            idle_since[0] = time.monotonic()
            return False
        return time.monotonic() - idle_since[0] > 3.0

    det.run(should_stop)
    # drop the warm-up records, then the records produced in the load's first seconds
    produced = np.array(det.timeline.produced_ms[_WARM_UP_RECORDS:], dtype=np.int64)
    every = np.array(det.timeline.latency_ms[_WARM_UP_RECORDS:])
    start = produced.min() if len(produced) else 0
    lat = every[produced >= start + _LOAD_WARM_UP_MS]
    steady = every[produced >= start + 5_000]  # and, for the steady state alone, the first 5 s
    return {
        "rate_tx_per_s": rate,
        "transactions": float(det.timeline.processed),
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "p99_after_5s": float(np.percentile(steady, 99)) if len(steady) else float("nan"),
        "mean_batch": float(np.mean(det.timeline.batches)) if det.timeline.batches else 0.0,
    }


def _simulate_when_assigned(
    det: _TimedDetector,
    run: BenchRun,
    topic: str,
    rate: float,
    duration_s: float,
    accounts: int,
    done: threading.Event,
    *,
    linger_ms: int = 5,
    report: str | None = None,
) -> None:
    if not det.assigned.wait(60):
        done.set()
        return
    # Start-up is not latency: a first small load makes the consumer resolve its offsets and
    # start fetching, and the detector handle a first batch, before the timed load begins.
    prefill(run, topic, _WARM_UP_RECORDS, accounts=accounts, seed=99)
    deadline = time.monotonic() + 60
    while det.timeline.processed < _WARM_UP_RECORDS and time.monotonic() < deadline:
        time.sleep(0.05)
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": str(run.client["bootstrap.servers"]),
        "FRAUDSTREAM_KAFKA__PARTITIONS": str(run.partitions),
        # the detector's latency, not the producer's batching (the simulator's default: 100 ms)
        "FRAUDSTREAM_SIMULATE__LINGER_MS": str(linger_ms),
    }
    cmd = [
        sys.executable, "-m", "fraudstream", "simulate", "--rate", str(rate),
        "--duration", str(duration_s), "--topic", topic, "--accounts", str(accounts),
    ]  # fmt: skip
    if report is not None:
        cmd += ["--report", report]
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    done.set()


def soak(
    run: BenchRun, rate: float, minutes: float, *, accounts: int, report_dir: str
) -> dict[str, Any]:
    """Minutes of the simulator (own process, its default batching) while the detector scores.

    What a short run cannot show: whether every produced record is scored after minutes of a
    paced stream, whether the consumer ever stalls (the watchdog's count), the largest lag,
    and latency minute by minute (a slowing broker shows as a rising tail).
    """
    topics = run.topics(f"soak{int(rate)}")
    det = run.detector(topics, f"{run.prefix}soak{int(rate)}")
    report = f"{report_dir}/soak-{int(rate)}.json"
    sim_done = threading.Event()
    threading.Thread(
        target=_simulate_when_assigned,
        args=(det, run, topics.source, rate, minutes * 60, accounts, sim_done),
        kwargs={"linger_ms": SimulateSettings().linger_ms, "report": report},
        daemon=True,
    ).start()
    produced: list[int] = []

    def should_stop() -> bool:
        if not sim_done.is_set():
            return False
        if not produced:
            try:
                produced.append(int(json.loads(Path(report).read_text())["produced"]))
            except (OSError, ValueError, KeyError):
                produced.append(-1)
            produced.append(int(time.monotonic()))
        expected = produced[0] + _WARM_UP_RECORDS
        return det.timeline.processed >= expected or time.monotonic() - produced[1] > 120

    stats = det.run(should_stop)
    t = det.timeline
    sent_ms = np.array(t.produced_ms[_WARM_UP_RECORDS:], dtype=np.int64)
    lat = np.array(t.latency_ms[_WARM_UP_RECORDS:])
    minute = (sent_ms - sent_ms.min()) // 60_000 if len(sent_ms) else sent_ms
    per_minute = [
        {
            "minute": int(m) + 1,
            "transactions": int((minute == m).sum()),
            "p50": float(np.percentile(lat[minute == m], 50)),
            "p99": float(np.percentile(lat[minute == m], 99)),
        }
        for m in np.unique(minute)
    ]
    return {
        "rate_tx_per_s": rate,
        "minutes": minutes,
        "produced": produced[0] if produced else -1,
        "scored": t.processed - _WARM_UP_RECORDS,
        "stalls": stats.stalls,
        "max_lag": det.max_lag,
        "per_minute": per_minute,
    }
