"""The records a bench run produces, by format: keyed and encoded as ``fraudstream simulate``
keys and encodes them, and the arguments that make the live simulator follow them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from fraudstream.schema import encode_card, encode_paysim
from fraudstream.simulate import CARD_START_MS, CardSimulator, PaySimSimulator

__all__ = ["CardSource", "PaySimSource", "RecordSource", "source_for"]

#: ``(key, value)`` of each record of a chunk, in production order.
Keyed = list[tuple[bytes, bytes]]
_CHUNK: Final = 50_000
_DAY_MS: Final = 86_400_000


class RecordSource(Protocol):
    """Simulated records of one format for the bench's topics."""

    @property
    def name(self) -> str:
        """The record format (``paysim``, ``card``)."""
        ...

    def chunks(self, count: int, *, accounts: int, seed: int) -> Iterator[Keyed]:
        """``count`` records of a fresh simulator, in chunks of at most 50,000."""
        ...

    def simulate_args(self, *, accounts: int, after: tuple[int, int]) -> list[str]:
        """Extra ``fraudstream simulate`` arguments for a live stream that follows the
        ``after = (seed, count)`` records of :meth:`chunks` already on its topic."""
        ...


@dataclass(frozen=True)
class PaySimSource:
    """The bank's PaySim records keyed by ``nameOrig``; the live simulator's event time is
    the wall clock, so it needs no argument to follow the pre-filled records."""

    name: str = "paysim"

    def chunks(self, count: int, *, accounts: int, seed: int) -> Iterator[Keyed]:
        sim = PaySimSimulator(accounts=accounts, seed=seed)
        for n in _sizes(count):
            yield [(r.nameOrig.encode(), encode_paysim(r)) for r in sim.next_batch(n)]

    def simulate_args(self, *, accounts: int, after: tuple[int, int]) -> list[str]:
        return []


@dataclass(frozen=True)
class CardSource:
    """Card records (the handbook's simulator, ``accounts`` customers, twice as many
    terminals) keyed by ``customerId``, event time from the handbook's first day.

    The card event-time guard accepts no record behind its partition's watermark, so the live
    simulator starts (``--start-ms``) at the first midnight after the records before it.
    """

    name: str = "card"

    def chunks(self, count: int, *, accounts: int, seed: int) -> Iterator[Keyed]:
        sim = CardSimulator(customers=accounts, seed=seed)
        for n in _sizes(count):
            yield [(r.customerId.encode(), encode_card(r)) for r in sim.next_batch(n)]

    def simulate_args(self, *, accounts: int, after: tuple[int, int]) -> list[str]:
        seed, count = after
        start_ms = CARD_START_MS
        if count:
            last = CardSimulator(customers=accounts, seed=seed).next_batch(count)[-1].eventTimeMs
            start_ms += (last - CARD_START_MS) // _DAY_MS * _DAY_MS + _DAY_MS
        return ["--format", "card", "--start-ms", str(start_ms)]


def _sizes(count: int) -> Iterator[int]:
    """Chunk sizes adding up to ``count``."""
    for start in range(0, count, _CHUNK):
        yield min(_CHUNK, count - start)


def source_for(mode: str) -> RecordSource:
    """The records a bundle of ``mode`` scores: card records for ``card``, else PaySim."""
    return CardSource() if mode == "card" else PaySimSource()
