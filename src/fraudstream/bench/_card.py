"""The card path's own figures: the card engine's state per customer and per terminal, and the
simulated handbook history a card bundle for the bench is trained on.

The end-to-end runs (sustained, live, soak) are the PaySim ones (:mod:`~fraudstream.bench._kafka`)
with a card bundle: :attr:`BenchRun.source` follows the bundle's format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from fraudstream.features import CardFeatureEngine
from fraudstream.schema import LabelMessage, TxBatch
from fraudstream.simulate import CARD_START_MS, CardSimulator, batch_labels

__all__ = ["card_history", "card_state_bytes"]

_DAY_MS: Final = 86_400_000
_CHUNK: Final = 50_000


def card_history(*, rows: int, customers: int, seed: int) -> tuple[TxBatch, list[LabelMessage]]:
    """``rows`` of simulated card history and the labels the simulator would send for them
    (analysts, chargebacks and disputes with their delays, as ``simulate --format card``)."""
    history = CardSimulator(customers=customers, seed=seed).history(rows)
    return history, batch_labels(history, seed=seed)


def card_state_bytes(
    *, customers: int = 50_000, days: Sequence[int] = (1, 7, 30), partitions: int = 4, seed: int = 5
) -> dict[str, Any]:
    """Replay ``max(days)`` days of the card simulator (``customers``, twice as many
    terminals) through :class:`CardFeatureEngine`; at the end of each of ``days``, the
    customers and terminals held and the bytes of state per customer and per terminal.

    The state is numpy arrays only (per partition: two hash tables and two arenas, keys are
    64-bit hashes, no id strings), counted at allocated capacity (``state_bytes``). A customer
    keeps its rows of the last 30 days, a terminal its rows back to the label delay + 90 days
    (trimmed only past 512 rows), so the bytes grow with the days of history: one figure per
    day in ``days``; ``state_bytes_per_customer|terminal`` are the last day's.
    """
    sim = CardSimulator(customers=customers, seed=seed)
    engine = CardFeatureEngine(partitions=partitions)
    engine.warm_up()
    ends = sorted(CARD_START_MS + d * _DAY_MS for d in set(days))
    out: dict[str, Any] = {"customers": customers, "terminals": sim.terminals, "days": []}
    rows = 0
    while ends:
        batch = sim.history(_CHUNK)
        lo = 0
        for cut in np.searchsorted(batch.event_time_ms, ends).tolist():
            if cut == len(batch):  # this day goes on in the next chunk
                break
            rows += _feed(engine, batch, lo, cut)
            lo = cut
            out["days"].append(_held(engine, (ends.pop(0) - CARD_START_MS) // _DAY_MS, rows))
        rows += _feed(engine, batch, lo, len(batch))
    last = out["days"][-1]
    out["state_bytes_per_customer"] = last["bytes_per_customer"]
    out["state_bytes_per_terminal"] = last["bytes_per_terminal"]
    return out


def _feed(engine: CardFeatureEngine, batch: TxBatch, lo: int, hi: int) -> int:
    """Rows ``lo`` to ``hi`` of ``batch`` into ``engine``; how many."""
    engine.update_and_extract(batch.take(np.arange(lo, hi)))
    return hi - lo


def _held(engine: CardFeatureEngine, day: int, rows: int) -> dict[str, float]:
    (customers, terminals), (c_bytes, t_bytes) = engine.entity_count(), engine.state_bytes()
    return {
        "day": float(day),
        "transactions": float(rows),
        "customers_held": float(customers),
        "terminals_held": float(terminals),
        "bytes_per_customer": c_bytes / max(customers, 1),
        "bytes_per_terminal": t_bytes / max(terminals, 1),
    }
