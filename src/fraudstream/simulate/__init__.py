"""Transaction generators (PaySim bank, handbook cards) with fraud robots; file replay."""

from __future__ import annotations

from fraudstream.simulate._card import CARD_ROBOTS, CARD_START_MS, CardColumns, CardSimulator
from fraudstream.simulate._ratelimit import RateLimiter
from fraudstream.simulate._replay import ReplayFile, SpeedupPacer, load_replay
from fraudstream.simulate._robots import ROBOTS
from fraudstream.simulate._simulator import PaySimSimulator
from fraudstream.simulate._write import (
    PAYSIM_COLUMNS,
    HistoryWriter,
    card_table,
    paysim_table,
    write_history,
)

__all__ = [
    "CARD_ROBOTS",
    "CARD_START_MS",
    "PAYSIM_COLUMNS",
    "ROBOTS",
    "CardColumns",
    "CardSimulator",
    "HistoryWriter",
    "PaySimSimulator",
    "RateLimiter",
    "ReplayFile",
    "SpeedupPacer",
    "card_table",
    "load_replay",
    "paysim_table",
    "write_history",
]
