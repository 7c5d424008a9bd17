"""Transaction generators (PaySim bank, handbook cards) with fraud robots; file replay."""

from __future__ import annotations

from fraudstream.simulate._card import CARD_ROBOTS, CARD_START_MS, CardColumns, CardSimulator
from fraudstream.simulate._labels import (
    LABEL_COLUMNS,
    Delay,
    LabelMix,
    LiveLabels,
    PendingLabels,
    batch_labels,
    label_table,
    simulate_labels,
)
from fraudstream.simulate._ratelimit import RateLimiter
from fraudstream.simulate._replay import ReplayFile, SpeedupPacer, load_replay
from fraudstream.simulate._robots import ROBOTS
from fraudstream.simulate._simulator import MixShift, PaySimSimulator
from fraudstream.simulate._write import (
    PAYSIM_COLUMNS,
    HistoryWriter,
    card_table,
    labels_path,
    paysim_table,
    write_history,
    write_labels,
)

__all__ = [
    "CARD_ROBOTS",
    "CARD_START_MS",
    "LABEL_COLUMNS",
    "PAYSIM_COLUMNS",
    "ROBOTS",
    "CardColumns",
    "CardSimulator",
    "Delay",
    "HistoryWriter",
    "LabelMix",
    "LiveLabels",
    "MixShift",
    "PaySimSimulator",
    "PendingLabels",
    "RateLimiter",
    "ReplayFile",
    "SpeedupPacer",
    "batch_labels",
    "card_table",
    "label_table",
    "labels_path",
    "load_replay",
    "paysim_table",
    "simulate_labels",
    "write_history",
    "write_labels",
]
