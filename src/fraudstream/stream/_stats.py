"""Counters of a detector run: volumes, decisions and live precision/recall against labels."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fraudstream.schema import DECISIONS
from fraudstream.stream._labels import LabelStats

__all__ = ["DetectorStats", "StageClock"]


class StageClock:
    """Wall seconds and entries per stage, accumulated: ``with clock("features"): …``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
            self.counts[stage] = self.counts.get(stage, 0) + 1

    def reset(self) -> None:
        """Forget what was timed so far (e.g. the wait for a first batch)."""
        self.seconds.clear()
        self.counts.clear()


@dataclass
class DetectorStats:
    """What a detector has done since it started (labels are the robots' ground truth)."""

    consumed: int = 0
    valid: int = 0
    invalid: int = 0
    batches: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    labelled: int = 0
    frauds: int = 0
    true_alerts: int = 0
    alerts_on_labelled: int = 0
    started_at: float = field(default_factory=time.monotonic)
    #: records behind the high watermark (the watchdog's last reading; None: unknown)
    lag: int | None = None
    #: seconds the consumer has been stalled (lag, nothing consumed); 0.0 when it is not
    stalled_s: float = 0.0
    #: stall episodes since the start
    stalls: int = 0
    #: time per stage of the consuming thread (``hand_over``: waiting for room in the output
    #: queue, and committing durable batches) and of the output thread (``stream._pipeline``)
    clock: StageClock = field(default_factory=StageClock)
    sink_clock: StageClock = field(default_factory=StageClock)
    #: the label channel's counts (None: the detector reads no labels)
    labels: LabelStats | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def count(self, decision: npt.NDArray[np.int8], label: npt.NDArray[np.int8]) -> None:
        """Add one scored batch."""
        counts = np.bincount(decision, minlength=len(DECISIONS))
        for name, n in zip(DECISIONS, counts.tolist(), strict=True):
            self.decisions[name] += n
        known = label >= 0
        alert = decision > 0
        self.labelled += int(known.sum())
        self.frauds += int((label == 1).sum())
        self.true_alerts += int((alert & (label == 1)).sum())
        self.alerts_on_labelled += int((alert & known).sum())

    @property
    def alerts(self) -> int:
        return self.decisions["review"] + self.decisions["block"]

    @property
    def precision(self) -> float | None:
        """Share of alerts (review + block) that are frauds; None before any alert."""
        return self.true_alerts / self.alerts_on_labelled if self.alerts_on_labelled else None

    @property
    def recall(self) -> float | None:
        """Share of frauds that raised an alert; None before any fraud."""
        return self.true_alerts / self.frauds if self.frauds else None

    def rate(self) -> float:
        """Mean valid transactions per second since the start."""
        elapsed = time.monotonic() - self.started_at
        return self.valid / elapsed if elapsed > 0 else 0.0

    def current_rate(self, over_s: float = 10.0) -> float:
        """Valid transactions per second over about the last ``over_s`` seconds."""
        now = time.monotonic()
        samples = self._samples
        if not samples:
            samples.append((self.started_at, 0))
        samples.append((now, self.valid))
        while len(samples) > 2 and now - samples[1][0] >= over_s:
            samples.popleft()
        then, valid_then = samples[0]
        if now - then <= 0:
            return 0.0
        return (self.valid - valid_then) / (now - then)
