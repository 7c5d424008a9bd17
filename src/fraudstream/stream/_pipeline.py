"""The detector's output stage on its own thread: explanations, alerts topic, store.

The consuming thread scores batch *k + 1* while this thread makes batch *k* durable, so the
slow, mostly GIL-free outputs (LightGBM contributions, librdkafka flush, SQLite/PostgreSQL
commits) overlap with decoding and features. Jobs finish in submission order; the consuming
thread commits a batch's offsets only once its job is done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from confluent_kafka import TopicPartition

from fraudstream.errors import StoreError
from fraudstream.model import Bundle
from fraudstream.schema import ScoredBatch, WindowStats
from fraudstream.sinks import AlertTopicSink, Store

__all__ = ["Job", "SinkWorker"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One consumed batch on its way to durability."""

    scored: ScoredBatch | None
    windows: list[WindowStats]
    offsets: list[TopicPartition]
    bundle: Bundle
    produced_ms: npt.NDArray[np.int64]  # Kafka timestamps of the batch's records (latency)
    durable_ms: float = field(default=0.0)


class SinkWorker:
    """Runs :class:`Job` outputs on a thread, at most ``max_in_flight`` jobs ahead.

    A ``StoreError`` is retried with exponential back-off (``retry_initial_s`` doubling up to
    ``retry_max_s``) while :attr:`outage` tells the consuming thread to pause; any other error
    stops the worker and is re-raised on the consuming thread.
    """

    def __init__(
        self,
        alerts: AlertTopicSink,
        store: Store,
        *,
        max_in_flight: int = 2,
        recorded_model: str | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.alerts = alerts
        self.store = store
        self.max_in_flight = max_in_flight
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.outage: StoreError | None = None
        self._todo: deque[Job] = deque()
        self._done: deque[Job] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._failure: BaseException | None = None
        self._models = {recorded_model} if recorded_model else set()  # versions in the store
        self._thread = threading.Thread(target=self._loop, name="fraudstream-sinks", daemon=True)
        self._thread.start()

    def submit(self, job: Job, keep_alive: Callable[[], None]) -> None:
        """Queue ``job``; while ``max_in_flight`` are pending, call ``keep_alive`` and wait."""
        with self._cond:
            while self._pending() >= self.max_in_flight and self._failure is None:
                self._cond.wait(0.05)
                if self.outage is not None:
                    break
            self._raise_failure()
            self._todo.append(job)
            self._cond.notify_all()
        keep_alive()

    def completed(self) -> list[Job]:
        """Jobs made durable since the last call, in submission order."""
        with self._cond:
            self._raise_failure()
            done = list(self._done)
            self._done.clear()
            return done

    def in_flight(self) -> int:
        with self._cond:
            return self._pending()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted job is durable (``False`` on timeout or outage)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending() and self.outage is None and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            self._raise_failure()
            return not self._pending()

    def stop(self) -> None:
        """Finish the job in hand (or abandon it during an outage) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    def _pending(self) -> int:
        return len(self._todo) + self._busy

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._stopping:
                    self._cond.wait()
                if not self._todo:
                    return
                job = self._todo.popleft()
                self._busy = 1
            try:
                finished = self._run(job)
            except BaseException as exc:  # handed to the consuming thread
                with self._cond:
                    self._failure = exc
                    self._busy = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = 0
                if finished:
                    job.durable_ms = time.time() * 1000
                    self._done.append(job)
                self._cond.notify_all()
                if not finished:
                    self._todo.clear()  # stopped during an outage: nothing more is durable
                    return

    def _run(self, job: Job) -> bool:
        scored = job.scored
        if job.bundle.version not in self._models:  # a hot-reloaded bundle's first batch
            self.store.record_model_version(
                job.bundle.version, json.dumps(job.bundle.metrics, default=str)
            )
            self._models.add(job.bundle.version)
        if scored is not None:
            explain(job.bundle, scored)
            self.alerts.write(scored)  # sent by librdkafka while the store commits
        if not self._store_durably(scored, job.windows):
            return False
        self.alerts.flush()
        return True

    def _store_once(self, scored: ScoredBatch | None, windows: list[WindowStats]) -> None:
        if scored is not None:
            self.store.write(scored)
        if windows:
            self.store.write_window_stats(windows)
        self.store.flush()

    def _store_durably(self, scored: ScoredBatch | None, windows: list[WindowStats]) -> bool:
        """Write and commit the batch, retrying through an outage; ``False`` if stopped."""
        try:
            self._store_once(scored, windows)
            return True
        except StoreError as exc:
            self.outage = exc
        started = time.monotonic()
        delay = self.retry_initial_s
        attempts = 1
        log.error(
            "store unavailable, offsets not committed; consumption paused, retrying the batch "
            "every ≤%.0f s: %s",
            self.retry_max_s,
            self.outage,
        )
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, timeout=delay)
                if self._stopping:
                    return False
            attempts += 1
            try:
                self._store_once(scored, windows)
                break
            except StoreError as exc:
                log.warning("store still unavailable (attempt %d): %s", attempts, exc)
                delay = min(self.retry_max_s, delay * 2)
        log.info("store back after %.1f s and %d attempt(s)", time.monotonic() - started, attempts)
        self.outage = None
        return True


def explain(bundle: Bundle, scored: ScoredBatch) -> None:
    """Fill ``scored.reasons`` for its review/block rows (LightGBM contributions)."""
    idx = scored.alert_index()
    if len(idx):
        for i, why in zip(idx.tolist(), bundle.explain(scored.features[idx]), strict=True):
            scored.reasons[i] = why
