"""CardSimulator: the Fraud Detection Handbook's card generator, vectorised, plus robots.

Follows the handbook's Chapter 2 ("Transaction data simulator"): customers and terminals at random
locations on a 100 x 100 square; a customer uses the terminals within ``radius`` of home; per day
a Poisson number of transactions (mean drawn per customer in [0, 4)), times normal around
noon (sd 20,000 s, kept inside the day), amounts normal (mean drawn in [5, 100), sd = mean / 2;
a negative draw is replaced by a uniform in [0, 2 mean)).
Its three fraud scenarios, each switchable:

1. ``high_amount``: every transaction above 220 is a fraud;
2. ``compromised_terminal``: each day ``terminals_per_day`` random terminals are compromised; all
   their transactions in the next 28 days are frauds;
3. ``compromised_customer``: each day ``customers_per_day`` random customers are compromised; in the
   next 14 days a third of their transactions are frauds with the amount x 5;

and one of our robots where it applies to cards:

4. ``card_testing``: a burst of 3-12 tiny payments (under 5) at random terminals within a minute,
   then one large payment (3-10 x the customer's mean), on a random active customer.

Ids are plain integers as in the handbook (nothing marks a robot). Event time is virtual (the
handbook's days from ``start_ms``), independent of how fast records are asked for.

Each transaction also has a merchant **category** (the public dataset's, ``CATEGORIES``) and a
**channel** (:data:`CHANNELS`), drawn by :mod:`~fraudstream.simulate._card_extras` from a
random stream of their own, so every other column is what it was without them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from fraudstream.errors import ConfigError
from fraudstream.schema import CardRecord, TxBatch, card_to_batch
from fraudstream.simulate._card_extras import CATEGORIES, CHANNELS, Habits

__all__ = ["CARD_ROBOTS", "CARD_START_MS", "CHANNELS", "CardColumns", "CardSimulator"]

log = logging.getLogger(__name__)

#: The card robots, by name, in ``TX_FRAUD_SCENARIO`` order (1-based; 0 = genuine).
CARD_ROBOTS: Final = ("high_amount", "compromised_terminal", "compromised_customer", "card_testing")
#: 2018-04-01 00:00:00 UTC, the handbook's first day (so its protocols' dates apply to our output).
CARD_START_MS: Final = 1_522_540_800_000
_DAY_S: Final = 86_400
_DAY_MS: Final = 86_400_000
_AREA: Final = 100.0
_HIGH_AMOUNT: Final = 220.0
_TERMINAL_DAYS: Final = 28
_CUSTOMER_DAYS: Final = 14
_BLOCK_DAYS: Final = 8  # days generated per numpy block

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(slots=True)
class CardColumns:
    """A block of card transactions, one array per handbook column (time order)."""

    tx_id: I64
    time_s: I64  # seconds since ``start_ms``
    customer: I64
    terminal: I64
    amount: F64
    scenario: npt.NDArray[np.int8]  # 0 = genuine, else 1-based index into CARD_ROBOTS
    category: npt.NDArray[np.int8]  # index into the public dataset's CATEGORIES
    channel: npt.NDArray[np.int8]  # index into CHANNELS

    def __len__(self) -> int:
        return len(self.tx_id)

    def slice(self, lo: int, hi: int) -> CardColumns:
        """Rows ``lo`` to ``hi`` (exclusive)."""
        return CardColumns(
            self.tx_id[lo:hi],
            self.time_s[lo:hi],
            self.customer[lo:hi],
            self.terminal[lo:hi],
            self.amount[lo:hi],
            self.scenario[lo:hi],
            self.category[lo:hi],
            self.channel[lo:hi],
        )

    @staticmethod
    def concat(parts: Sequence[CardColumns]) -> CardColumns:
        """The parts end to end."""
        return CardColumns(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in CardColumns.__slots__)
        )


class CardSimulator:
    """Card transactions in the handbook's layout, generated a block of days at a time.

    ``customers`` and ``terminals`` (default 2 per customer, as the handbook's 5,000 / 10,000);
    ``robots`` choose the scenarios (default: all of :data:`CARD_ROBOTS`); ``card_tests_per_day``
    is the mean number of card-testing attacks a day. Same parameters, same stream, however it is
    cut into batches.
    """

    def __init__(
        self,
        *,
        customers: int = 5_000,
        terminals: int | None = None,
        seed: int = 7,
        start_ms: int = CARD_START_MS,
        radius: float = 5.0,
        robots: Sequence[str] = CARD_ROBOTS,
        terminals_per_day: int = 2,
        customers_per_day: int = 3,
        card_tests_per_day: float = 2.0,
    ) -> None:
        terminals = 2 * customers if terminals is None else terminals
        names = (robots,) if isinstance(robots, str) else tuple(robots)
        unknown = sorted(set(names) - set(CARD_ROBOTS))
        if unknown:
            raise ConfigError(f"unknown card robot(s) {unknown}; choose from {list(CARD_ROBOTS)}")
        if customers < 1 or terminals < 1:
            raise ConfigError(f"need >= 1 customer and terminal, got {customers}, {terminals}")
        if radius <= 0 or start_ms < 0:
            raise ConfigError(f"radius must be > 0 and start_ms >= 0, got {radius}, {start_ms}")
        self.customers = customers
        self.terminals = terminals
        self.seed = seed
        self.start_ms = start_ms
        self.robots = names
        self._terminals_per_day = terminals_per_day if "compromised_terminal" in names else 0
        self._customers_per_day = customers_per_day if "compromised_customer" in names else 0
        self._tests_per_day = card_tests_per_day if "card_testing" in names else 0.0
        streams = np.random.SeedSequence(seed).spawn(3)  # children 0 and 1 as with spawn(2)
        self._rng = np.random.default_rng(streams[1])
        self._build_world(np.random.default_rng(streams[0]), radius)
        #: categories and channels: their own stream, so the other columns do not change
        self.habits = Habits(customers, np.random.default_rng(streams[2]))
        self._day = 0
        self._next_id = 0
        self._buffer: CardColumns | None = None
        self._pos = 0
        # compromised until (exclusive, in days)
        self._terminal_until = np.zeros(terminals, dtype=np.int64)
        self._customer_until = np.zeros(customers, dtype=np.int64)

    def _build_world(self, rng: np.random.Generator, radius: float) -> None:
        self.customer_xy = rng.uniform(0.0, _AREA, (self.customers, 2))
        self.mean_amount = rng.uniform(5.0, 100.0, self.customers)
        self.std_amount = self.mean_amount / 2.0
        self.mean_tx_per_day = rng.uniform(0.0, 4.0, self.customers)
        self.terminal_xy = rng.uniform(0.0, _AREA, (self.terminals, 2))
        near = cKDTree(self.terminal_xy).query_ball_point(self.customer_xy, r=radius)
        counts = np.fromiter((len(x) for x in near), dtype=np.int64, count=self.customers)
        self._near_count = counts
        self._near_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flat = [t for x in near for t in sorted(x)]
        self._near = np.asarray(flat, dtype=np.int64)

    @property
    def emitted_days(self) -> int:
        """Whole days generated so far."""
        return self._day

    def next_columns(self, n: int) -> CardColumns:
        """The next ``n`` transactions, in event-time order."""
        if n < 0:
            raise ConfigError(f"batch size must be >= 0, got {n}")
        parts: list[CardColumns] = []
        need = n
        while need > 0:
            if self._buffer is None or self._pos >= len(self._buffer):
                self._buffer = self._generate_block(_BLOCK_DAYS)
                self._pos = 0
                continue
            take = min(need, len(self._buffer) - self._pos)
            parts.append(self._buffer.slice(self._pos, self._pos + take))
            self._pos += take
            need -= take
        if not parts:
            return self._empty()
        return parts[0] if len(parts) == 1 else CardColumns.concat(parts)

    def next_batch(self, n: int) -> list[CardRecord]:
        """The next ``n`` transactions as card records (JSON-ready).

        ``txId`` is ``card-{seed}-{n}``: the store keeps one row per id, so streams of two seeds
        must not share ids (as PaySim's ``sim-{seed}-{seq}``).
        """
        return self._records(self.next_columns(n))

    def next_messages(self, n: int) -> list[tuple[CardRecord, dict[str, str]]]:
        """The next ``n`` transactions as card records with their extra fields, named as in the
        simulator's files (``TX_CATEGORY``, ``TX_CHANNEL``): what ``simulate`` sends to Kafka."""
        c = self.next_columns(n)
        category = np.asarray(CATEGORIES)[c.category].tolist()
        channel = np.asarray(CHANNELS)[c.channel].tolist()
        return [
            (r, {"TX_CATEGORY": cat, "TX_CHANNEL": ch})
            for r, cat, ch in zip(self._records(c), category, channel, strict=True)
        ]

    def _records(self, c: CardColumns) -> list[CardRecord]:
        event_ms = (c.time_s * 1000 + self.start_ms).tolist()
        names = (None, *CARD_ROBOTS)
        return [
            CardRecord(
                customerId=str(cu),
                terminalId=str(te),
                amount=am,
                eventTimeMs=t,
                txId=f"card-{self.seed}-{i}",
                isFraud=int(s > 0),
                fraudScenario=names[s],
            )
            for i, t, cu, te, am, s in zip(
                c.tx_id.tolist(),
                event_ms,
                c.customer.tolist(),
                c.terminal.tolist(),
                c.amount.tolist(),
                c.scenario.tolist(),
                strict=True,
            )
        ]

    def history(self, n: int) -> TxBatch:
        """The next ``n`` transactions as a canonical batch (``tx_id`` = ``card-{seed}-{n}``)."""
        records = self.next_batch(n)
        return card_to_batch(records, [r.txId or "" for r in records])

    def _empty(self) -> CardColumns:
        e, e8 = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8)
        return CardColumns(e, e, e, e, np.empty(0), e8, e8, e8)

    def _generate_block(self, days: int) -> CardColumns:
        """``days`` whole days: genuine traffic, then the robots, sorted by time."""
        rng = self._rng
        first = self._day
        counts = rng.poisson(np.broadcast_to(self.mean_tx_per_day, (days, self.customers)))
        counts[:, self._near_count == 0] = 0  # no terminal within reach: no transaction
        day_of = np.repeat(np.repeat(np.arange(days), self.customers), counts.ravel())
        cust = np.repeat(np.tile(np.arange(self.customers), days), counts.ravel())
        t_in_day = np.rint(rng.normal(_DAY_S / 2, 20_000.0, len(cust))).astype(np.int64)
        keep = (t_in_day > 0) & (t_in_day < _DAY_S)
        day_of, cust, t_in_day = day_of[keep], cust[keep], t_in_day[keep]
        amount = self._amounts(cust)
        terminal = self._terminal_for(cust)
        time_s = (first + day_of) * _DAY_S + t_in_day
        amount, scenario = self._handbook_frauds(first, days, day_of, cust, terminal, amount)
        none = np.zeros(len(cust), dtype=np.int8)  # drawn once the block is in order
        parts = [CardColumns(time_s, time_s, cust, terminal, amount, scenario, none, none)]
        if self._tests_per_day > 0:
            parts.append(self._card_tests(first, days))
        block = CardColumns.concat(parts)
        order = np.lexsort((block.customer, block.time_s))
        customer, scenario = block.customer[order], block.scenario[order]
        category, channel = self.habits.draw(customer, scenario)
        block = CardColumns(
            np.arange(self._next_id, self._next_id + len(order), dtype=np.int64),
            block.time_s[order],
            customer,
            block.terminal[order],
            block.amount[order],
            scenario,
            category,
            channel,
        )
        self._next_id += len(order)
        self._day += days
        return block

    def _amounts(self, cust: I64) -> F64:
        rng = self._rng
        mean = self.mean_amount[cust]
        amount = rng.normal(mean, self.std_amount[cust])
        neg = amount < 0
        amount[neg] = rng.uniform(0.0, 2.0 * mean[neg])
        out: F64 = np.round(amount, 2)
        return out

    def _terminal_for(self, cust: I64) -> I64:
        pick = (self._rng.random(len(cust)) * self._near_count[cust]).astype(np.int64)
        out: I64 = self._near[self._near_start[cust] + pick]
        return out

    def _handbook_frauds(
        self, first: int, days: int, day_of: I64, cust: I64, terminal: I64, amount: F64
    ) -> tuple[F64, npt.NDArray[np.int8]]:
        """Scenarios 1-3, drawn day by day as the handbook does (later scenarios win)."""
        rng = self._rng
        scenario = np.zeros(len(cust), dtype=np.int8)
        if "high_amount" in self.robots:
            scenario[amount > _HIGH_AMOUNT] = 1
        day = first + day_of
        for d in range(first, first + days):
            if self._terminals_per_day:
                chosen = rng.choice(self.terminals, self._terminals_per_day, replace=False)
                self._terminal_until[chosen] = d + _TERMINAL_DAYS
            if self._customers_per_day:
                chosen = rng.choice(self.customers, self._customers_per_day, replace=False)
                self._customer_until[chosen] = d + _CUSTOMER_DAYS
            today = day == d
            if self._terminals_per_day:
                hit = today & (self._terminal_until[terminal] > d)
                scenario[hit] = 2
            if self._customers_per_day:
                at_risk = np.flatnonzero(today & (self._customer_until[cust] > d))
                stolen = at_risk[rng.random(len(at_risk)) < 1.0 / 3.0]
                amount[stolen] = np.round(amount[stolen] * 5.0, 2)
                scenario[stolen] = 3
        return amount, scenario

    def _card_tests(self, first: int, days: int) -> CardColumns:
        """Robot 4: tiny payments at random terminals within a minute, then one large one."""
        rng = self._rng
        attacks = int(rng.poisson(self._tests_per_day * days))
        active = np.flatnonzero(self._near_count > 0)
        if attacks == 0 or len(active) == 0:
            return self._empty()
        victim = rng.choice(active, attacks)
        start = (first + rng.integers(0, days, attacks)) * _DAY_S + rng.integers(
            0, _DAY_S - 600, attacks
        )
        tiny = rng.integers(3, 13, attacks)
        who = np.repeat(victim, tiny + 1)
        offset = rng.integers(1, 60, len(who))
        last = np.cumsum(tiny + 1) - 1
        offset[last] = 60 + rng.integers(10, 300, attacks)
        time_s = np.repeat(start, tiny + 1) + offset
        amount = np.round(rng.uniform(0.5, 4.99, len(who)), 2)
        amount[last] = np.round(self.mean_amount[victim] * rng.uniform(3.0, 10.0, attacks), 2)
        terminal = rng.integers(0, self.terminals, len(who))
        terminal[last] = self._terminal_for(victim)
        scenario = np.full(len(who), 4, dtype=np.int8)
        none = np.zeros(len(who), dtype=np.int8)
        return CardColumns(time_s, time_s, who, terminal, amount, scenario, none, none)
