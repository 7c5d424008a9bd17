"""A stalled detector, as the dashboard sees it: records wait, committed offsets stand still."""

from __future__ import annotations

from dataclasses import dataclass, field

from fraudstream.dashboard._kafka import Lag

__all__ = ["StallTracker"]


@dataclass
class StallTracker:
    """Fed the group's lag every few seconds; how long nothing has been committed while
    records wait (0.0 when the detector keeps up, is idle, or the lag is unknown)."""

    stall_after_s: float = 20.0
    _committed: dict[int, int] | None = field(default=None, repr=False)
    _since_s: float = 0.0

    def observe(self, lag: Lag, now_s: float) -> float:
        if lag.total is None or lag.total == 0:
            self._committed = None
            return 0.0
        if lag.committed != self._committed:
            self._committed = dict(lag.committed)
            self._since_s = now_s
            return 0.0
        still_s = now_s - self._since_s
        return still_s if still_s >= self.stall_after_s else 0.0
