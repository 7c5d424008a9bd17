"""``fraudstream bench``: reproducible measurements of the detector on the embedded broker."""

from __future__ import annotations

from fraudstream.bench._card import card_history, card_state_bytes
from fraudstream.bench._kafka import BenchRun, live_latency, prefill, soak, sustained_throughput
from fraudstream.bench._stages import stage_costs
from fraudstream.bench._state import bounded_state, state_bytes_per_account

__all__ = [
    "BenchRun",
    "card_history",
    "card_state_bytes",
    "live_latency",
    "prefill",
    "soak",
    "stage_costs",
    "bounded_state",
    "state_bytes_per_account",
    "sustained_throughput",
]
