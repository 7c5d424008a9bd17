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
from confluent_kafka import Message

from fraudstream.bench._labels import LabelFlow
from fraudstream.bench._records import RecordSource, source_for
from fraudstream.config import Settings, SimulateSettings, TopicSettings
from fraudstream.model import Bundle
from fraudstream.sinks import open_store
from fraudstream.stream import (
    Detector,
    DetectorStats,
    Job,
    build_detector,
    ensure_topics,
    make_producer,
)

__all__ = ["BenchRun", "live_latency", "prefill", "soak", "sustained_throughput"]

#: Records the live runs send and see processed before the timed load (excluded from latency).
_WARM_UP_RECORDS = 200
_WARM_UP_SEED = 99
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
    # each record's latency split: produced -> its batch handed to the detector, then -> durable
    to_poll_ms: list[float] = field(default_factory=list)
    polled_at_ms: list[float] = field(default_factory=list)  # per batch not yet durable, FIFO
    # both threads' stage times from the first batch to the last durable one
    consuming_s: dict[str, float] = field(default_factory=dict)
    output_s: dict[str, float] = field(default_factory=dict)
    # batches the consuming thread handled in that window, per stage
    consuming_counts: dict[str, int] = field(default_factory=dict)


class _TimedDetector(Detector):
    """The real detector, recording when each batch is durable and how old its records are;
    with a :class:`LabelFlow`, labelling a share of each durable batch's transactions."""

    timeline: _Timeline
    assigned: threading.Event
    label_flow: LabelFlow | None = None
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
        self.timeline.polled_at_ms.append(time.time() * 1000.0)
        super().process(msgs)

    def on_durable(self, job: Job) -> None:
        self.timeline.last_s = time.perf_counter()
        self.timeline.processed += len(job.produced_ms)
        self.timeline.batches.append(len(job.produced_ms))
        self.timeline.latency_ms.extend((job.durable_ms - job.produced_ms).tolist())
        # jobs turn durable in the order they were submitted, one per processed batch
        polled = self.timeline.polled_at_ms.pop(0) if self.timeline.polled_at_ms else job.durable_ms
        self.timeline.to_poll_ms.extend((polled - job.produced_ms).tolist())
        self.timeline.produced_ms.extend(job.produced_ms.tolist())
        self.timeline.consuming_s = dict(self.stats.clock.seconds)
        self.timeline.consuming_counts = dict(self.stats.clock.counts)
        self.timeline.output_s = dict(self.stats.sink_clock.seconds)
        if self.label_flow is not None and job.scored is not None:
            self.label_flow.see(job.scored.tx)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.store.close()
            if self.label_flow is not None:
                self.label_flow.close()


@dataclass(frozen=True)
class BenchRun:
    """Where a benchmark run writes: broker client settings, topic prefix, store, model.

    Each detector run reads and writes topics of its own, ``{prefix}{name}…``; ``store_url``
    may name the run with ``{run}`` (the default temporary SQLite store: a file per run, so
    no run inserts into a table another one filled). ``settings.detect`` configures the
    detector as ``fraudstream detect`` would be; ``label_every``: one label per that many
    transactions in the runs with labels (100: 1 %).
    """

    client: dict[str, Any]
    prefix: str
    store_url: str
    bundle: Bundle
    settings: Settings
    partitions: int = 4
    batch_max: int = 20_000
    label_every: int = 100

    @property
    def source(self) -> RecordSource:
        """The records the runs produce: the bundle's format (a card bundle decodes card)."""
        return source_for(self.bundle.mode)

    def topics(self, name: str) -> TopicSettings:
        base = f"{self.prefix}{name}"
        return TopicSettings(
            transactions=base, alerts=f"{base}-alerts", dlq=f"{base}-dlq", labels=f"{base}-labels"
        )

    def detector(self, name: str, *, labels: bool = False) -> _TimedDetector:
        """The real detector (``stream.build_detector``) of the run ``name``, reading its label
        topic (fed by a :class:`LabelFlow`) when ``labels``."""
        topics = self.topics(name)
        s = self.settings
        settings = s.model_copy(
            update={
                "topics": topics,
                "kafka": s.kafka.model_copy(update={"partitions": self.partitions}),
                "detect": s.detect.model_copy(
                    update={
                        "group_id": f"{self.prefix}{name}",
                        "batch_max": self.batch_max,
                        "labels": labels,
                    }
                ),
            }
        )
        store = open_store(self.store_url.replace("{run}", name))
        store.open()
        det = build_detector(settings, self.bundle, store, client=self.client, kind=_TimedDetector)
        assert isinstance(det, _TimedDetector)
        det.timeline = _Timeline()
        det.assigned = threading.Event()
        if labels:
            det.label_flow = LabelFlow(
                make_producer(self.client), topics.labels, every=self.label_every
            )
        return det


def prefill(run: BenchRun, topic: str, count: int, *, accounts: int, seed: int = 1) -> float:
    """Produce ``count`` simulated transactions (``run.source``) as fast as possible; returns
    tx/s produced."""
    ensure_topics(run.client, [topic], partitions=run.partitions)
    producer = make_producer(run.client)
    started = time.perf_counter()
    for chunk in run.source.chunks(count, accounts=accounts, seed=seed):
        for key, value in chunk:
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError(f"prefill of {topic} did not complete")
    return count / (time.perf_counter() - started)


def sustained_throughput(
    run: BenchRun, count: int, *, accounts: int, labels: bool = False, name: str = "sustained"
) -> dict[str, Any]:
    """Pre-fill a topic, then time the real detector from its first batch to its last; with
    ``labels``, one label per ``run.label_every`` transactions flows while it runs."""
    topic = run.topics(name).transactions
    produced_per_s = prefill(run, topic, count, accounts=accounts)
    det = run.detector(name, labels=labels)
    stats = det.run(lambda: det.timeline.processed >= count, idle_exit_s=15.0)
    t = det.timeline
    elapsed = t.last_s - (t.first_s or t.last_s)
    commits = stats.sink_clock.counts.get("store_commit", 0)
    out: dict[str, Any] = {
        "transactions": float(t.processed),
        "dead_lettered": float(stats.invalid),  # of those: invalid, or too late or early
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
    if labels:
        out["labels"] = _label_figures(det, stats)
    return out


def _per_tx(seconds: dict[str, float], transactions: int) -> dict[str, float]:
    return {k: v * 1e6 / transactions for k, v in seconds.items()} if transactions else {}


def _label_figures(det: _TimedDetector, stats: DetectorStats) -> dict[str, float]:
    """What the label channel did in a run with labels, and what it cost.

    ``sync_ms_per_batch``: ``LabelStats.sync_s`` (reading the label topic to its end before
    each batch, and once a second while idle) per scored batch, ``sync_max_ms`` the longest
    once; ``stage_ms_per_batch``: the
    consuming thread's ``labels`` stage (that read, plus completing pending labels) per batch
    of the timed window; ``feed_us_per_tx``: the bench's own label producer, which runs on the
    detector's consuming thread (counted in the run's time, not the detector's work).
    """
    flow, lab, t = det.label_flow, stats.labels, det.timeline
    assert flow is not None and lab is not None
    stage_s = t.consuming_s.get("labels", 0.0)
    stage_batches = t.consuming_counts.get("labels", 0)
    processed = max(t.processed, 1)
    return {
        "produced": float(flow.produced),
        "share_of_transactions": flow.produced / processed,
        "fraud_verdicts": float(flow.frauds),
        "contradictions": float(flow.contradictions),
        "undelivered": float(flow.failed),
        "read": float(lab.read),
        "applied": float(lab.applied),
        "duplicates": float(lab.duplicates),
        "contradicting": float(lab.contradicting),
        "invalid": float(lab.invalid),
        "pending": float(lab.pending),
        "late_batches": float(lab.late),
        "batches": float(stats.batches),
        "sync_ms_per_batch": lab.sync_s * 1e3 / stats.batches if stats.batches else 0.0,
        "sync_max_ms": lab.sync_max_s * 1e3,
        "stage_ms_per_batch": stage_s * 1e3 / stage_batches if stage_batches else 0.0,
        "stage_us_per_tx": stage_s * 1e6 / processed,
        "feed_us_per_tx": flow.seconds * 1e6 / processed,
    }


def live_latency(
    run: BenchRun,
    rate: float,
    duration_s: float,
    *,
    accounts: int,
    labels: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Simulator (own process) at ``rate`` while the detector scores; latency percentiles.

    Latency is from the record's Kafka timestamp (set when the simulator produced it) to the end
    of the batch that made its decision durable (alerts flushed, store and offsets committed).
    Not counted: a first small load (:data:`_WARM_UP_RECORDS`, processed before the timed load
    starts) and the records produced in the timed load's first :data:`_LOAD_WARM_UP_MS`. With
    ``labels``, one label per ``run.label_every`` transactions flows while it runs. ``name``
    names the run's topics and group (default ``live{rate}``, ``labelled-live{rate}``).
    """
    name = name or ("labelled-" if labels else "") + f"live{int(rate)}"
    det = run.detector(name, labels=labels)
    sim_done = threading.Event()
    threading.Thread(
        target=_simulate_when_assigned,
        args=(det, run, run.topics(name), rate, duration_s, accounts, sim_done),
        daemon=True,
    ).start()
    idle_since = [time.monotonic()]

    def should_stop() -> bool:
        if not sim_done.is_set():
            idle_since[0] = time.monotonic()
            return False
        return time.monotonic() - idle_since[0] > 3.0

    stats = det.run(should_stop)
    # drop the warm-up records, then the records produced in the load's first seconds
    produced = np.array(det.timeline.produced_ms[_WARM_UP_RECORDS:], dtype=np.int64)
    every = np.array(det.timeline.latency_ms[_WARM_UP_RECORDS:])
    start = produced.min() if len(produced) else 0
    lat = every[produced >= start + _LOAD_WARM_UP_MS]
    steady = every[produced >= start + 5_000]  # and, for the steady state alone, the first 5 s
    to_poll = np.array(det.timeline.to_poll_ms[_WARM_UP_RECORDS:])[
        produced >= start + _LOAD_WARM_UP_MS
    ]
    out: dict[str, Any] = {
        "rate_tx_per_s": rate,
        "transactions": float(det.timeline.processed),
        "dead_lettered": float(stats.invalid),
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "p99_after_5s": float(np.percentile(steady, 99)) if len(steady) else float("nan"),
        "mean_batch": float(np.mean(det.timeline.batches)) if det.timeline.batches else 0.0,
        # where the time goes: until the detector has the record (producer batching, broker,
        # fetch), then until its batch is durable (scoring, store, alerts, commit)
        "to_poll_p50": float(np.percentile(to_poll, 50)) if len(to_poll) else float("nan"),
        "to_poll_p99": float(np.percentile(to_poll, 99)) if len(to_poll) else float("nan"),
        "in_detector_p50": (float(np.percentile(lat - to_poll, 50)) if len(lat) else float("nan")),
        "in_detector_p99": (float(np.percentile(lat - to_poll, 99)) if len(lat) else float("nan")),
    }
    if labels:
        out["labels"] = _label_figures(det, stats)
    return out


def _simulate_when_assigned(
    det: _TimedDetector,
    run: BenchRun,
    topics: TopicSettings,
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
    prefill(run, topics.transactions, _WARM_UP_RECORDS, accounts=accounts, seed=_WARM_UP_SEED)
    deadline = time.monotonic() + 60
    while det.timeline.processed < _WARM_UP_RECORDS and time.monotonic() < deadline:
        time.sleep(0.05)
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": str(run.client["bootstrap.servers"]),
        "FRAUDSTREAM_KAFKA__PARTITIONS": str(run.partitions),
        # the detector's latency, not the producer's batching (the simulator's default: 100 ms)
        "FRAUDSTREAM_SIMULATE__LINGER_MS": str(linger_ms),
        # the simulator's own labels (delayed hours to weeks: hardly any due within a run) go
        # to a topic no detector reads; a run's labels are the bench's (LabelFlow), never these
        "FRAUDSTREAM_TOPICS__LABELS": f"{topics.transactions}-simulator-labels",
    }
    cmd = [
        sys.executable, "-m", "fraudstream", "simulate", "--rate", str(rate),
        "--duration", str(duration_s), "--topic", topics.transactions, "--accounts", str(accounts),
    ]  # fmt: skip
    cmd += run.source.simulate_args(accounts=accounts, after=(_WARM_UP_SEED, _WARM_UP_RECORDS))
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
    name = f"soak{int(rate)}"
    det = run.detector(name)
    report = f"{report_dir}/soak-{int(rate)}.json"
    sim_done = threading.Event()
    threading.Thread(
        target=_simulate_when_assigned,
        args=(det, run, run.topics(name), rate, minutes * 60, accounts, sim_done),
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
        "dead_lettered": stats.invalid,  # counted in "scored"
        "stalls": stats.stalls,
        "max_lag": det.max_lag,
        "per_minute": per_minute,
    }
