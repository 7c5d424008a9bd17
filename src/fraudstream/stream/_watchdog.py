"""The detector's watchdog: consumer lag from librdkafka's statistics, and stalls.

A consumer can stop receiving records while its partitions still hold unread ones: the
embedded broker, for one, answers a fetch with nothing when reading takes longer than the
consumer's ``fetch.wait.max.ms``. Nothing fails; the detector just goes quiet. The watchdog
turns that into a loud, visible state: lag (records behind the high watermark) with nothing
consumed for ``stall_after_s`` is a *stall*, logged at once, repeated every
``repeat_s`` while it lasts, and exposed through :class:`LagReport` (live line, summary,
metrics).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LagReport", "LagWatchdog", "broker_up", "lag_from_statistics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LagReport:
    """What the watchdog knows now."""

    #: records behind the high watermark on the assigned partitions (``None``: not known yet)
    lag: int | None
    #: seconds with lag and nothing consumed (0.0 while records flow or nothing is due)
    stalled_s: float
    #: whether the consumer is connected to a broker (a stall without one is a lost broker)
    broker_up: bool = True

    @property
    def stalled(self) -> bool:
        return self.stalled_s > 0.0


def lag_from_statistics(stats_json: str, topic: str) -> dict[int, int]:
    """Per-partition lag of ``topic`` in a librdkafka statistics document.

    librdkafka's ``consumer_lag`` is the high watermark (from fetch responses, so it is right
    on brokers whose ListOffsets answers are not) minus the committed offset. Before anything
    is committed it is -1: the lag is then counted from the consumer's position (or the log
    start). Partitions not assigned to this consumer, or without a high watermark, are left
    out.
    """
    try:
        doc = json.loads(stats_json)
        partitions = doc.get("topics", {}).get(topic, {}).get("partitions", {})
    except (ValueError, AttributeError):
        return {}
    lag: dict[int, int] = {}
    for key, p in partitions.items():
        if key == "-1" or not isinstance(p, dict) or not p.get("desired", True):
            continue
        value = p.get("consumer_lag", -1)
        if isinstance(value, int) and value >= 0:
            lag[int(key)] = value
            continue
        high = p.get("hi_offset", -1)  # nothing committed yet: from the position or the start
        if isinstance(high, int) and high >= 0:
            seen = [p.get(k, -1) for k in ("app_offset", "committed_offset", "lo_offset")]
            position = max([o for o in seen if isinstance(o, int) and o >= 0], default=0)
            lag[int(key)] = max(high - position, 0)
    return lag


def broker_up(stats_json: str) -> bool:
    """Whether a librdkafka statistics document shows a connection to some broker (state UP).

    Bootstrap and coordinator pseudo-brokers (negative node ids) do not count.
    """
    try:
        brokers = json.loads(stats_json).get("brokers", {})
        return any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers.values())
    except (ValueError, AttributeError):
        return True  # unreadable: assume connected (the lag reading decides)


class LagWatchdog:
    """Feeds on librdkafka statistics (``stats_cb``) and the detector's consumed count.

    >>> dog = LagWatchdog("tx", stall_after_s=10, clock=lambda: 0.0)
    >>> dog.observe(consumed=0).lag is None
    True
    """

    def __init__(
        self,
        topic: str,
        *,
        stall_after_s: float = 20.0,
        repeat_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.stall_after_s = stall_after_s
        self.repeat_s = repeat_s
        self.clock = clock
        self.partitions: dict[int, int] = {}
        self.stalls = 0  # stall episodes so far
        self._known = False
        self._consumed = -1
        self._progress_at = clock()
        self._stalled_since: float | None = None
        self._warned_at: float | None = None
        self.broker_up = True

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's ``stats_cb``: called on the consuming thread, inside poll/consume."""
        lag = lag_from_statistics(stats_json, self.topic)
        if lag or '"topics"' in stats_json:
            self.partitions = lag
            self._known = True
        self.broker_up = broker_up(stats_json)

    @property
    def lag(self) -> int | None:
        return sum(self.partitions.values()) if self._known else None

    def reset(self) -> None:
        """Start counting afresh (after a deliberate pause, e.g. a store outage)."""
        self._progress_at = self.clock()
        self._end_stall()

    def observe(self, consumed: int) -> LagReport:
        """Called once per detector loop with the number of records consumed so far."""
        now = self.clock()
        if consumed != self._consumed:
            self._consumed = consumed
            self._progress_at = now
            self._end_stall()
            return LagReport(self.lag, 0.0, self.broker_up)
        lag = self.lag
        if not lag or now - self._progress_at < self.stall_after_s:
            if not lag:
                self._progress_at = now  # nothing to read is not a stall
                self._end_stall()
            return LagReport(lag, 0.0, self.broker_up)
        if self._stalled_since is None:
            self._stalled_since = self._progress_at
            self.stalls += 1
        stalled_s = now - self._stalled_since
        if self._warned_at is None or now - self._warned_at >= self.repeat_s:
            self._warned_at = now
            if not self.broker_up:
                log.warning(
                    "detector stalled: %s record(s) waiting on %s and no broker reachable for "
                    "%.0f s; waiting for it",
                    f"{lag:,}",
                    self.topic,
                    stalled_s,
                )
                return LagReport(lag, stalled_s, False)
            log.warning(
                "detector stalled: %s record(s) waiting on %s (partitions %s) and none received "
                "for %.0f s; the broker answers fetches empty or not at all. On the embedded "
                "broker, raise FRAUDSTREAM_DETECT__FETCH_WAIT_MS or use a real Kafka cluster",
                f"{lag:,}",
                self.topic,
                sorted(p for p, n in self.partitions.items() if n > 0),
                stalled_s,
            )
        return LagReport(lag, stalled_s, self.broker_up)

    def _end_stall(self) -> None:
        if self._stalled_since is not None:
            log.warning(
                "detector consuming again after a %.0f s stall on %s",
                self.clock() - self._stalled_since,
                self.topic,
            )
            self._stalled_since = None
            self._warned_at = None
