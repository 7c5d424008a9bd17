"""A token bucket that paces a producer to a target rate (standard library only)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fraudstream.errors import ConfigError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token bucket: ``acquire(n)`` blocks until ``n`` tokens are available (``rate_per_s`` refill).

    The bucket holds at most ``burst`` tokens (default: a tenth of a second's worth, at least 1) and
    starts full. A request larger than the bucket is allowed and paid back by sleeping (the bucket
    goes into debt), so the long-run rate is exact and no request can deadlock. ``rate_per_s <= 0``
    means unlimited. ``clock`` and ``sleep`` are injectable so tests need no real time.

    >>> now = [0.0]
    >>> def sleep(seconds: float) -> None:
    ...     now[0] += seconds
    >>> limiter = RateLimiter(10, burst=1, clock=lambda: now[0], sleep=sleep)
    >>> limiter.acquire(21)  # 1 token in the bucket, 20 owed at 10/s
    >>> now[0]
    2.0
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst is not None and burst <= 0:
            raise ConfigError(f"burst must be > 0 tokens, got {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate_per_s / 10.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def acquire(self, n: int) -> None:
        """Take ``n`` tokens, sleeping first if the bucket cannot cover them."""
        if n <= 0 or self.rate_per_s <= 0:
            return
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s) - n
        if self._tokens < 0:
            self._sleep(-self._tokens / self.rate_per_s)

    @property
    def tokens(self) -> float:
        """Tokens in the bucket at the last ``acquire`` (negative while paying back a debt)."""
        return self._tokens
