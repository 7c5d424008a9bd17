"""PaySimSimulator: an agent-based bank in PaySim's format, with fraud robots among customers."""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.schema import KINDS, PaySimRecord, TxBatch, paysim_to_batch
from fraudstream.simulate._draws import (
    CASH_IN,
    CASH_OUT,
    DEBIT,
    FOLLOW_UP_SHARE,
    MICRO_BURST_SHARE,
    MICRO_SHARE,
    PAYMENT,
    TRANSFER,
    Chunk,
    draw_chunk,
    follow_ups_per_slot,
    kind_shares,
)
from fraudstream.simulate._population import build_population
from fraudstream.simulate._robots import ROBOTS, Robots, Step

__all__ = ["MixShift", "PaySimSimulator"]

log = logging.getLogger(__name__)

_CHUNK: Final = 8_192  # genuine slots drawn per numpy call; independent of the batch size asked
_HOUR_MS: Final = 3_600_000
_FLAG_AMOUNT: Final = 200_000.0  # PaySim's legacy rule: a TRANSFER above this is flagged
_OVERDRAFT_SHARE: Final = 0.10  # draws above the balance that still go through (clipped)
_EMPTY_SHARE: Final = 0.03  # genuine transfers that move the whole balance
_NEW_PAYEE_SHARE: Final = 0.03  # genuine transfers to a brand-new account
_LOG_FOLLOW_UP_MS: Final = (math.log(10_000.0), math.log(3_600_000.0))
_EMPTY_CHUNK: Final = Chunk([], [], [], [], [], [], [], [], [])


@dataclass(frozen=True)
class MixShift:
    """A change of the simulated population from event time ``at_ms`` on (drift tests).

    ``robots`` and ``fraud_rate`` replace the robot mix (``None``: unchanged); genuine amounts
    are drawn ``amount_scale`` times larger. Attacks planned before go on as planned.
    """

    at_ms: int
    robots: Sequence[str] | None = None
    fraud_rate: float | None = None
    amount_scale: float = 1.0


class PaySimSimulator:
    """A bank's transaction stream in PaySim's format, with fraud robots labelling their own.

    Event time is virtual: Poisson arrivals at ``rate_per_s`` on average (busier in the afternoon,
    quieter at night, UTC) from ``start_ms``; ``step`` is the hour since ``start_ms``. Genuine
    traffic follows PaySim's type shares and heavy-tailed amounts; robots (see ``ROBOTS``) inject
    about ``fraud_rate`` of all records, shared equally, and their later steps (a mule's cash-out…)
    are interleaved with genuine traffic in event-time order. Same parameters, same stream, however
    it is cut into batches. ``shift`` changes the robot mix and the amounts from an event time on.

    Balances: customers' balances are tracked; merchants' are not (``oldbalanceDest`` =
    ``newbalanceDest`` = 0, as in PaySim). TRANSFER and CASH_OUT move ``amount`` from the origin to
    the destination customer (a cash agent for CASH_OUT); CASH_IN moves it from the agent
    (``nameDest``) to the origin. Deliberate inconsistency, as in PaySim: when ``amount`` exceeds
    the payer's balance (an overdraft: about 10 % of such draws, the rest spend part of the
    balance) the payer's new balance is clipped at 0 while the payee receives the full amount.
    """

    def __init__(
        self,
        *,
        accounts: int = 20_000,
        merchants: int | None = None,
        seed: int = 7,
        rate_per_s: float = 500.0,
        start_ms: int = 0,
        robots: Sequence[str] = ROBOTS,
        fraud_rate: float = 0.003,
        shift: MixShift | None = None,
    ) -> None:
        merchants = max(20, accounts // 10) if merchants is None else merchants
        _validate(accounts, merchants, rate_per_s, start_ms, fraud_rate)
        self.accounts = accounts
        self.merchants = merchants
        self.seed = seed
        self.rate_per_s = float(rate_per_s)
        self.start_ms = start_ms
        self.fraud_rate = fraud_rate
        streams = np.random.SeedSequence(seed).spawn(4)
        self._rng = np.random.default_rng(streams[0])
        self._pop = build_population(np.random.default_rng(streams[1]), accounts, merchants)
        self._world = random.Random(int(streams[2].generate_state(1)[0]))
        robot_rnd = random.Random(int(streams[3].generate_state(1)[0]))
        names = (robots,) if isinstance(robots, str) else tuple(robots)
        self._robots = Robots(names, fraud_rate, follow_ups_per_slot(), self._pop, robot_rnd)
        self.robots = self._robots.names
        self._kind_cum = np.cumsum(kind_shares())
        self._robot_cum = np.cumsum(np.asarray(self._robots.attack_probs, dtype=np.float64))
        self._shift = shift
        self._amount_scale = 1.0
        if shift is not None:
            _validate(accounts, merchants, rate_per_s, start_ms, shift.fraud_rate or 0.0)
            if not (math.isfinite(shift.amount_scale) and shift.amount_scale > 0):
                raise ConfigError(f"amount scale must be > 0, got {shift.amount_scale}")
        self._heap: list[tuple[float, int, Step]] = []
        self._pushed = 0
        self._emitted = 0
        self._clock_ms = float(start_ms)
        self._chunk = _EMPTY_CHUNK
        self._pos = 0
        log.debug("simulator: %d accounts, %d merchants, robots %s", accounts, merchants, names)

    @property
    def emitted(self) -> int:
        """Records returned so far (the next record's sequence number)."""
        return self._emitted

    def next_batch(self, n: int) -> list[PaySimRecord]:
        """The next ``n`` transactions, in event-time order."""
        if n < 0:
            raise ConfigError(f"batch size must be >= 0, got {n}")
        out: list[PaySimRecord] = []
        append = out.append
        heap = self._heap
        for _ in range(n):
            if self._pos >= len(self._chunk.time_ms):
                self._refill()
            if heap and heap[0][0] <= self._chunk.time_ms[self._pos]:
                at, _, step = heapq.heappop(heap)
                append(self._run_step(at, step))
            else:
                append(self._genuine(self._pos))
                self._pos += 1
        self._emitted += n
        return out

    def history(self, n: int) -> TxBatch:
        """The next ``n`` transactions as a canonical batch, ``tx_id`` = ``sim-{seed}-{seq}``."""
        first = self._emitted
        records = self.next_batch(n)
        tx_ids = [f"sim-{self.seed}-{seq}" for seq in range(first, first + n)]
        return paysim_to_batch(records, tx_ids)

    def _refill(self) -> None:
        chunk = self._draw()
        shift = self._shift
        if shift is not None and chunk.time_ms[-1] >= shift.at_ms:
            cut = bisect.bisect_left(chunk.time_ms, shift.at_ms)
            if cut:  # the slots before the shift; the next refill draws with the new mix
                chunk = chunk.head(cut)
            else:
                self._apply(shift)
                chunk = self._draw()
        self._chunk = chunk
        self._clock_ms = chunk.time_ms[-1]
        self._pos = 0

    def _draw(self) -> Chunk:
        return draw_chunk(
            self._rng,
            self._pop,
            _CHUNK,
            self._clock_ms,
            self.rate_per_s,
            self._kind_cum,
            self._robot_cum,
            self._amount_scale,
        )

    def _apply(self, shift: MixShift) -> None:
        """Draw from ``shift``'s mix from now on (open compromise windows stay open)."""
        self._shift = None
        self._amount_scale = shift.amount_scale
        names = tuple(shift.robots) if shift.robots is not None else self._robots.names
        rate = shift.fraud_rate if shift.fraud_rate is not None else self.fraud_rate
        robots = Robots(names, rate, follow_ups_per_slot(), self._pop, self._robots.rnd)
        robots.adopt(self._robots)
        self._robots, self.robots, self.fraud_rate = robots, robots.names, rate
        self._robot_cum = np.cumsum(np.asarray(robots.attack_probs, dtype=np.float64))
        log.info(
            "simulator: from %d ms robots %s at fraud rate %g, amounts x%g",
            shift.at_ms,
            ",".join(robots.names),
            rate,
            shift.amount_scale,
        )

    def _push(self, at: float, step: Step) -> None:
        self._pushed += 1
        heapq.heappush(self._heap, (at, self._pushed, step))

    def _genuine(self, i: int) -> PaySimRecord:
        c = self._chunk
        t, kind, o, v = c.time_ms[i], c.kind[i], c.orig[i], c.v[i]
        robot = c.robot[i]
        if robot:
            for at, step in self._robots.plan(robot, t):
                self._push(at, step)
        hit = self._robots.intercept(kind, o, c.dest[i]) if self._robots.windows_open else None
        if hit is not None:
            return self._compromised(t, kind, o, c.dest[i], c.amount[i] * hit[1], hit[0])
        amount = self._genuine_amount(kind, o, c.amount[i], c.u[i], v, c.frac[i])
        dest = self._genuine_dest(kind, o, c.dest[i], v)
        rec = self._transact(t, kind, o, dest, amount, None)
        if kind == TRANSFER and v >= 1.0 - FOLLOW_UP_SHARE:
            self._follow_up(t, dest, amount)
        elif kind == PAYMENT and v < MICRO_SHARE * MICRO_BURST_SHARE:
            self._micro_burst(t, o)
        return rec

    def _genuine_amount(
        self, kind: int, orig: int, amount: float, u: float, v: float, frac: float
    ) -> float:
        """Most customers spend within their means; some overdraw, a few move everything."""
        if kind == CASH_IN:
            return amount
        balance = self._pop.balance[orig]
        if kind == TRANSFER and v < _EMPTY_SHARE and balance >= 1.0:
            return balance
        if amount > balance >= 1.0 and u >= _OVERDRAFT_SHARE:
            return max(0.01, round(balance * frac, 2))
        return amount

    def _compromised(
        self, t: float, kind: int, orig: int, dest: int, amount: float, scenario: str
    ) -> PaySimRecord:
        """A fraud in place of a genuine slot: transfers go to a mule; at most the balance."""
        balance = self._pop.balance[orig]
        if amount > balance >= 1.0:
            amount = balance * self._world.uniform(0.8, 1.0)
        if kind == TRANSFER:
            dest = self._world.choice(self._pop.mules)
            if dest == orig:
                dest = self._pop.mules[0] if self._pop.mules[0] != orig else self._pop.mules[1]
        elif kind == CASH_OUT and dest == orig:
            dest = self._other_agent(orig)
        return self._transact(t, kind, orig, dest, max(0.01, round(amount, 2)), scenario)

    def _genuine_dest(self, kind: int, orig: int, dest: int, v: float) -> int:
        if kind == TRANSFER:
            if _EMPTY_SHARE <= v < _EMPTY_SHARE + _NEW_PAYEE_SHARE:
                return self._pop.open_account(self._world)
            return dest if dest != orig else (orig + 1) % self._pop.customers
        if dest == orig and kind in (CASH_OUT, CASH_IN):
            return self._other_agent(orig)
        return dest

    def _other_agent(self, account: int) -> int:
        agents = self._pop.agents
        return agents[0] if agents[0] != account else agents[1]

    def _follow_up(self, t: float, receiver: int, received: float) -> None:
        """The receiver of a genuine transfer cashes part of it out, 10 s to 1 h later."""
        w = self._world
        agent = w.choice(self._pop.agents)
        if agent == receiver:
            agent = self._other_agent(receiver)
        amount = max(0.01, round(received * w.uniform(0.3, 1.0), 2))
        delay_ms = math.exp(w.uniform(*_LOG_FOLLOW_UP_MS))
        self._push(t + delay_ms, Step(CASH_OUT, receiver, agent, amount))

    def _micro_burst(self, t: float, orig: int) -> None:
        """1-3 more micro-payments by the same customer within 90 s (a genuine look-alike)."""
        w = self._world
        merchants = len(self._pop.merchant_ids)
        for _ in range(w.randint(1, 3)):
            amount = round(w.uniform(0.5, 20.0), 2)
            self._push(
                t + w.uniform(1_000.0, 90_000.0),
                Step(PAYMENT, orig, w.randrange(merchants), amount),
            )

    def _run_step(self, at: float, step: Step) -> PaySimRecord:
        amount = step.amount
        if step.share > 0.0:
            amount = round(self._pop.balance[step.orig] * step.share, 2)
            if amount < 1.0:
                amount = step.amount
        rec = self._transact(at, step.kind, step.orig, step.dest, amount, step.scenario)
        then = step.then
        if then is not None:
            if step.then_carry > 0.0:
                then.amount = max(0.01, round(amount * step.then_carry, 2))
            self._push(at + step.then_delay_ms, then)
        return rec

    def _transact(
        self, t: float, kind: int, orig: int, dest: int, amount: float, scenario: str | None
    ) -> PaySimRecord:
        """Apply the transaction to the balances and return its record."""
        pop = self._pop
        bal = pop.balance
        old_orig = bal[orig]
        if kind == CASH_IN:
            new_orig = round(old_orig + amount, 2)
            old_dest = bal[dest]
            new_dest = round(old_dest - amount, 2) if old_dest > amount else 0.0
            bal[dest] = new_dest
            dest_name = pop.ids[dest]
        else:
            new_orig = round(old_orig - amount, 2) if old_orig > amount else 0.0
            if kind in (PAYMENT, DEBIT):
                old_dest = new_dest = 0.0
                dest_name = pop.merchant_ids[dest]
            else:
                old_dest = bal[dest]
                new_dest = bal[dest] = round(old_dest + amount, 2)
                dest_name = pop.ids[dest]
        bal[orig] = new_orig
        t_ms = int(t)
        return PaySimRecord(
            step=(t_ms - self.start_ms) // _HOUR_MS,
            type=KINDS[kind],
            amount=amount,
            nameOrig=pop.ids[orig],
            nameDest=dest_name,
            oldbalanceOrg=old_orig,
            newbalanceOrig=new_orig,
            oldbalanceDest=old_dest,
            newbalanceDest=new_dest,
            isFraud=0 if scenario is None else 1,
            isFlaggedFraud=1 if kind == TRANSFER and amount > _FLAG_AMOUNT else 0,
            eventTimeMs=t_ms,
            fraudScenario=scenario,
        )


def _validate(
    accounts: int, merchants: int, rate_per_s: float, start_ms: int, fraud_rate: float
) -> None:
    if accounts < 10:
        raise ConfigError(f"accounts must be >= 10, got {accounts}")
    if merchants < 1:
        raise ConfigError(f"merchants must be >= 1, got {merchants}")
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ConfigError(
            f"rate_per_s must be > 0 (it drives the virtual clock), got {rate_per_s}; "
            "pace the real stream with RateLimiter instead"
        )
    if start_ms < 0:
        raise ConfigError(f"start_ms must be >= 0, got {start_ms}")
    if not 0.0 <= fraud_rate < 0.5:
        raise ConfigError(f"fraud_rate must be in [0, 0.5), got {fraud_rate}")
