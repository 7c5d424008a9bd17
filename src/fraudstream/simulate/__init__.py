"""Transaction generators: a PaySim-format bank with fraud robots, and a rate limiter to pace it."""

from __future__ import annotations

from fraudstream.simulate._ratelimit import RateLimiter
from fraudstream.simulate._robots import ROBOTS
from fraudstream.simulate._simulator import PaySimSimulator

__all__ = ["ROBOTS", "PaySimSimulator", "RateLimiter"]
