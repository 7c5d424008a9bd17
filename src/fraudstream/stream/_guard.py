"""The event-time guard: records too far ahead of their broker time or behind their partition.

A transaction is rejected (to the dead-letter topic, with the reason) when its event time is

- more than ``max_future_skew_ms`` ahead of its record's broker timestamp (a producer's clock
  gone wrong: such a time would drag the partition's TTL sweep and the window statistics into the
  future), or
- more than ``max_lateness_ms`` behind its partition's **watermark**: the largest event time
  accepted from that partition so far (an old record would read entity state already swept).

Lateness is judged against the watermark, never against broker time: ``fraudstream replay``
produces old files now, keeping their event times. The watermark is a function of the
partition's records in offset order alone, so the detector and the state restorer, which replays
the partition, make the same decisions and reach the same watermark. A rejected record never
moves it. Per partition the state is one integer (:meth:`EventTimeGuard.watermarks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from fraudstream.errors import ConfigError
from fraudstream.features._engine import _groups  # row indices per partition, in batch order
from fraudstream.schema._bounds import MAX_FUTURE_SKEW_MS, ahead_reason

__all__ = ["DEFAULT_LIMITS", "EventTimeGuard", "guard_for"]

#: ``(max_future_skew_ms, max_lateness_ms)`` by record format (README, "Input rules").
#: PaySim: a day ahead of broker time; two days behind the watermark (the day of skew that may
#: have raised it, plus a day of delivery delay), far below the 30-day TTL of entity state.
#: Card: none, as the card engine folds rows in event-time order and a row behind its
#: partition's watermark would be folded after later rows or not, by batch boundaries.
DEFAULT_LIMITS: Final = {"paysim": (MAX_FUTURE_SKEW_MS, 2 * 86_400_000), "card": (0, 0)}

I64 = npt.NDArray[np.int64]
_NONE: Final = -(1 << 62)  # no watermark yet: below any event time, and no overflow below it
_HOUR_MS: Final = 3_600_000


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _late_reason(name: str, t: int, mark: int, partition: int, max_lateness_ms: int) -> str:
    return (
        f"{name} {t} ({_utc(t)}) is {(mark - t) / _HOUR_MS:,.1f} h behind partition "
        f"{partition}'s watermark {mark} ({_utc(mark)}, its latest accepted event time; at most "
        f"{max_lateness_ms / _HOUR_MS:,.6g} h allowed): too late to score against current state"
    )


class EventTimeGuard:
    """Rejects records too far ahead of broker time or behind their partition's watermark.

    ``max_lateness_ms`` must be at least ``max_future_skew_ms``: a record accepted that far
    ahead raises the watermark, and its partition's on-time records must still pass.

    >>> g = EventTimeGuard(max_future_skew_ms=0, max_lateness_ms=10)
    >>> t, ts = np.array([100, 95, 80, 101]), np.full(4, 100)
    >>> sorted(g.check(t, ts, np.zeros(4, np.int32))), g.watermarks()
    ([2, 3], {0: 100})
    """

    def __init__(
        self,
        *,
        max_future_skew_ms: int = DEFAULT_LIMITS["paysim"][0],
        max_lateness_ms: int = DEFAULT_LIMITS["paysim"][1],
    ) -> None:
        if max_future_skew_ms < 0 or max_lateness_ms < max_future_skew_ms:
            raise ConfigError(
                f"need 0 <= max_future_skew_ms ({max_future_skew_ms}) <= max_lateness_ms "
                f"({max_lateness_ms}): a record accepted max_future_skew_ms ahead raises its "
                "partition's watermark, and on-time records behind it must not be dead-lettered"
            )
        self.max_future_skew_ms = max_future_skew_ms
        self.max_lateness_ms = max_lateness_ms
        self._marks: dict[int, int] = {}

    def watermarks(self) -> dict[int, int]:
        """Each partition's watermark (ms): the whole state, e.g. for a snapshot."""
        return dict(self._marks)

    def restore_watermarks(self, marks: Mapping[int, int]) -> None:
        """Set the watermarks of the partitions in ``marks`` (from :meth:`watermarks`)."""
        self._marks.update(marks)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the watermarks of ``partitions`` (their state is restored or starts afresh)."""
        for p in partitions:
            self._marks.pop(p, None)

    def check(
        self,
        event_time_ms: I64,
        broker_ts_ms: I64,
        partition: npt.NDArray[np.int32],
        *,
        name: str = "eventTimeMs",
    ) -> dict[int, str]:
        """The rejected rows of a batch (in offset order per partition) with their reasons;
        the accepted rows raise their partition's watermark.

        ``broker_ts_ms`` of ``0`` or less (no broker time) skips the skew bound for that row.
        """
        if not len(event_time_ms):
            return {}
        ahead = (broker_ts_ms > 0) & (event_time_ms - broker_ts_ms > self.max_future_skew_ms)
        bad = {
            i: ahead_reason(
                name, int(event_time_ms[i]), int(broker_ts_ms[i]), self.max_future_skew_ms
            )
            for i in np.flatnonzero(ahead).tolist()
        }
        for p, rows in _groups(partition):
            times = event_time_ms[rows]
            # the watermark each row is judged by: the largest earlier accepted time. A late
            # row is below it, so counting it in the running maximum changes nothing.
            marks = np.maximum.accumulate(np.where(ahead[rows], _NONE, times))
            before = np.empty_like(marks)
            before[0] = self._marks.get(p, _NONE)
            np.maximum(marks[:-1], before[0], out=before[1:])
            late = (times < before - self.max_lateness_ms) & ~ahead[rows]
            for j in np.flatnonzero(late).tolist():
                mark = int(before[j])
                reason = _late_reason(name, int(times[j]), mark, p, self.max_lateness_ms)
                bad[int(rows[j])] = reason
            top = max(int(marks[-1]), int(before[0]))
            if top > _NONE:
                self._marks[p] = top
        return bad


def guard_for(
    record_format: str, *, max_future_skew_ms: int | None = None, max_lateness_ms: int | None = None
) -> EventTimeGuard:
    """A guard for ``record_format`` (``paysim`` or ``card``) with its :data:`DEFAULT_LIMITS`
    where a limit is ``None``; an unset ``max_lateness_ms`` is at least ``max_future_skew_ms``."""
    skew, lateness = DEFAULT_LIMITS[record_format]
    skew = skew if max_future_skew_ms is None else max_future_skew_ms
    lateness = max(lateness, skew) if max_lateness_ms is None else max_lateness_ms
    return EventTimeGuard(max_future_skew_ms=skew, max_lateness_ms=lateness)
