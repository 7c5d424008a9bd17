"""Sliding event-time windows (e.g. 30 s long, refreshed every second) over the scored stream."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraudstream.schema import WindowStats

__all__ = ["SlidingWindow"]

_FIELDS = 5  # transactions, frauds, alerts, amount, fraud_amount


class SlidingWindow:
    """Per-step buckets by event time; a window of ``window_ms`` ends at every step boundary.

    Buckets older than the window are dropped, so memory is ``window_ms / step_ms`` buckets.
    A transaction later than the window already emitted for its time is still counted in the
    windows that end after it (windows are not re-emitted).
    """

    def __init__(self, window_ms: int = 30_000, step_ms: int = 1_000) -> None:
        if window_ms % step_ms:
            raise ValueError("window_ms must be a multiple of step_ms")
        self.window_ms = window_ms
        self.step_ms = step_ms
        self._buckets: dict[int, npt.NDArray[np.float64]] = {}
        self._emitted_until: int | None = None  # index of the last bucket whose window was emitted
        self._watermark: int | None = None

    def add(
        self,
        event_time_ms: npt.NDArray[np.int64],
        amount: npt.NDArray[np.float64],
        is_fraud: npt.NDArray[np.bool_],
        is_alert: npt.NDArray[np.bool_],
    ) -> None:
        """Count a batch (vectorised over it)."""
        if len(event_time_ms) == 0:
            return
        idx = event_time_ms // self.step_ms
        keys, inverse = np.unique(idx, return_inverse=True)
        values = np.column_stack(
            [np.ones_like(amount), is_fraud, is_alert, amount, np.where(is_fraud, amount, 0.0)]
        )
        sums = np.zeros((len(keys), _FIELDS))
        np.add.at(sums, inverse, values)
        for key, row in zip(keys.tolist(), sums, strict=True):
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = row
            else:
                bucket += row
        top = int(keys[-1])
        self._watermark = top if self._watermark is None else max(self._watermark, top)

    def advance(self) -> list[WindowStats]:
        """The windows that closed since the last call: one per step up to the watermark."""
        if self._watermark is None:
            return []
        last_closed = self._watermark - 1  # the watermark's own bucket may still fill
        first = last_closed if self._emitted_until is None else self._emitted_until + 1
        first = max(first, last_closed - self.window_ms // self.step_ms)
        out = [self._window_ending_after(b) for b in range(first, last_closed + 1)]
        if out:
            self._emitted_until = last_closed
        self._evict(last_closed)
        return out

    def _window_ending_after(self, bucket: int) -> WindowStats:
        n = self.window_ms // self.step_ms
        total = np.zeros(_FIELDS)
        for b in range(bucket - n + 1, bucket + 1):
            row = self._buckets.get(b)
            if row is not None:
                total += row
        return WindowStats(
            window_end_ms=(bucket + 1) * self.step_ms,
            window_ms=self.window_ms,
            transactions=int(total[0]),
            frauds=int(total[1]),
            alerts=int(total[2]),
            amount=float(total[3]),
            fraud_amount=float(total[4]),
        )

    def _evict(self, last_closed: int) -> None:
        horizon = last_closed - self.window_ms // self.step_ms
        for key in [k for k in self._buckets if k <= horizon]:
            del self._buckets[key]
