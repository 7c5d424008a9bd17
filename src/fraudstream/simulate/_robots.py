"""Fraud robots: each plans an attack as a few scheduled steps, executed later in event-time order.

A robot only uses what any customer could: ordinary-looking accounts, ordinary transaction kinds.
``fraudScenario`` (the robot's name) is the answer key, never visible in ids or amounts.

Robots 4 and 5 open a *compromise window* instead of scheduling steps: the simulator asks
:meth:`Robots.intercept` about each genuine transaction, and a share of those that touch a
compromised merchant or customer become frauds. A window lasts a number of the entity's own
transactions (what "some days" of its activity is at a realistic per-account rate), so the fraud
share does not depend on how fast the virtual clock runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from fraudstream.errors import ConfigError
from fraudstream.simulate._draws import CASH_IN, CASH_OUT, PAYMENT, TRANSFER
from fraudstream.simulate._population import Population

__all__ = ["ROBOTS", "Planned", "Robots", "Step"]

#: The robots, by name.
ROBOTS: Final = (
    "account_takeover",
    "mule_fan_in",
    "card_testing",
    "compromised_merchant",
    "compromised_customer",
)
#: Compromised merchant: its next 20-80 payments, 20-50 % of them frauds (customers defrauded).
_MERCHANT_WINDOW: Final = (20, 80)
_MERCHANT_SHARE: Final = (0.2, 0.5)
#: Compromised customer: its next 8-30 debits, a third of them frauds at 3-6 x the usual amount.
_CUSTOMER_WINDOW: Final = (8, 30)
_CUSTOMER_SHARE: Final = 1.0 / 3.0
_CUSTOMER_FACTOR: Final = (3.0, 6.0)


@dataclass(slots=True)
class Step:
    """One scheduled transaction.

    ``share > 0``: the amount is that share of the origin's balance when the step runs (``amount``
    is then the fallback when the balance has meanwhile dropped under 1). ``then`` is scheduled
    ``then_delay_ms`` after this step runs; with ``then_carry > 0`` its amount becomes that share of
    this step's amount.
    """

    kind: int
    orig: int
    dest: int  # a merchant index for PAYMENT, else a customer index
    amount: float
    share: float = 0.0
    scenario: str | None = None
    then: Step | None = None
    then_delay_ms: float = 0.0
    then_carry: float = 0.0


Planned = list[tuple[float, Step]]  # (event time in ms, step)
_Planner = Callable[["_Context", float], Planned]


@dataclass(slots=True)
class _Context:
    pop: Population
    rnd: random.Random
    special: frozenset[int]  # agents and mules: never victims
    merchants: dict[int, list[float]] = field(default_factory=dict)  # -> [left, share]
    customers: dict[int, list[float]] = field(default_factory=dict)  # -> [left, share]

    def victim(self, min_balance: float) -> int | None:
        """A random customer holding at least ``min_balance`` (else the richest of 20 tries)."""
        best, best_balance = -1, 0.0
        for _ in range(20):
            i = self.rnd.randrange(self.pop.customers)
            if i in self.special:
                continue
            balance = self.pop.balance[i]
            if balance >= min_balance:
                return i
            if balance > best_balance:
                best, best_balance = i, balance
        return best if best_balance >= 1.0 else None

    def log_uniform(self, low: float, high: float) -> float:
        return math.exp(self.rnd.uniform(math.log(low), math.log(high)))

    def fallback(self, account: int, share: float) -> float:
        return max(1.0, round(self.pop.balance[account] * share, 2))


def _account_takeover(ctx: _Context, t: float) -> Planned:
    """Victim's (nearly) whole balance to a mule, then the mule cashes it out 5 s to 5 min later."""
    victim = ctx.victim(5_000.0)
    if victim is None:
        return []
    rnd = ctx.rnd
    mule = rnd.choice(ctx.pop.mules)
    share = 1.0 if rnd.random() < 0.5 else rnd.uniform(0.9, 0.999)
    name = "account_takeover"
    cash_out = Step(CASH_OUT, mule, rnd.choice(ctx.pop.agents), 1.0, scenario=name)
    transfer = Step(
        TRANSFER,
        victim,
        mule,
        ctx.fallback(victim, share),
        share,
        name,
        then=cash_out,
        then_delay_ms=ctx.log_uniform(5_000.0, 300_000.0),
        then_carry=rnd.uniform(0.97, 1.0),
    )
    return [(t + rnd.uniform(1.0, 3_000.0), transfer)]


def _mule_fan_in(ctx: _Context, t: float) -> Planned:
    """3-10 victims pay one fresh account within minutes; 30 s-10 min later it cashes out."""
    rnd = ctx.rnd
    victims: list[int] = []
    wanted = rnd.randint(3, 10)
    for _ in range(3 * wanted):
        v = ctx.victim(1_000.0)
        if v is not None and v not in victims:
            victims.append(v)
        if len(victims) == wanted:
            break
    if len(victims) < 3:
        return []
    name = "mule_fan_in"
    collector = ctx.pop.open_account(rnd)
    planned: Planned = []
    total = 0.0
    for v in victims:
        t += 1.0 + rnd.expovariate(1.0 / 20_000.0)
        share = rnd.uniform(0.3, 1.0)
        fallback = ctx.fallback(v, share)
        total += fallback
        planned.append((t, Step(TRANSFER, v, collector, fallback, share, name)))
    agent = rnd.choice(ctx.pop.agents)
    share = rnd.uniform(0.97, 1.0)
    cash_out = Step(CASH_OUT, collector, agent, round(total * share, 2), share, name)
    planned.append((t + ctx.log_uniform(30_000.0, 600_000.0), cash_out))
    return planned


def _card_testing(ctx: _Context, t: float) -> Planned:
    """3-12 payments under 5 within a minute, then (10 s-5 min on) one large PAYMENT/TRANSFER."""
    victim = ctx.victim(2_000.0)
    if victim is None:
        return []
    rnd = ctx.rnd
    name = "card_testing"
    merchants = len(ctx.pop.merchant_ids)
    offsets = sorted(rnd.uniform(1.0, 60_000.0) for _ in range(rnd.randint(3, 12)))
    planned: Planned = [
        (t + dt, Step(PAYMENT, victim, rnd.randrange(merchants), round(rnd.uniform(0.5, 4.99), 2)))
        for dt in offsets
    ]
    for _, step in planned:
        step.scenario = name
    when = t + offsets[-1] + ctx.log_uniform(10_000.0, 300_000.0)
    if rnd.random() < 0.5:
        share = rnd.uniform(0.5, 1.0)
        final = Step(PAYMENT, victim, rnd.randrange(merchants), 0.0, share, name)
    else:
        share = rnd.uniform(0.8, 1.0)
        final = Step(TRANSFER, victim, rnd.choice(ctx.pop.mules), 0.0, share, name)
    final.amount = ctx.fallback(victim, share)
    planned.append((when, final))
    return planned


def _compromised_merchant(ctx: _Context, t: float) -> Planned:
    """A popular merchant is breached: a share of its next payments defraud their customers."""
    merchant = int(ctx.pop.sample_merchants(np.array([ctx.rnd.random()]))[0])
    left = ctx.rnd.randint(*_MERCHANT_WINDOW)
    ctx.merchants[merchant] = [float(left), ctx.rnd.uniform(*_MERCHANT_SHARE)]
    return []


def _compromised_customer(ctx: _Context, t: float) -> Planned:
    """A customer's credentials are stolen: a third of their next debits are frauds, 3-6 x."""
    for _ in range(20):
        victim = int(ctx.pop.sample_customers(np.array([ctx.rnd.random()]))[0])
        if victim not in ctx.special:
            ctx.customers[victim] = [float(ctx.rnd.randint(*_CUSTOMER_WINDOW)), _CUSTOMER_SHARE]
            break
    return []


def _mean(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2.0


#: name -> (planner, mean fraud records per attack)
_PLANNERS: Final[dict[str, tuple[_Planner, float]]] = {
    "account_takeover": (_account_takeover, 2.0),
    "mule_fan_in": (_mule_fan_in, 6.5 + 1.0),
    "card_testing": (_card_testing, 7.5 + 1.0),
    "compromised_merchant": (
        _compromised_merchant,
        _mean(_MERCHANT_WINDOW) * _mean(_MERCHANT_SHARE),
    ),
    "compromised_customer": (_compromised_customer, _mean(_CUSTOMER_WINDOW) * _CUSTOMER_SHARE),
}


class Robots:
    """The active robots: their attack probability per genuine slot, and their planners."""

    def __init__(
        self,
        names: Sequence[str],
        fraud_rate: float,
        extra_per_slot: float,
        pop: Population,
        rnd: random.Random,
    ) -> None:
        unknown = sorted(set(names) - set(ROBOTS))
        if unknown:
            raise ConfigError(f"unknown robot(s) {unknown}; choose from {list(ROBOTS)}")
        self.names = tuple(dict.fromkeys(names))
        self._ctx = _Context(pop, rnd, frozenset(pop.agents) | frozenset(pop.mules))
        # fraud / all records = fraud_rate, with all = genuine slots + follow-ups + fraud
        per_robot = (
            fraud_rate * (1.0 + extra_per_slot) / (1.0 - fraud_rate) / max(1, len(self.names))
        )
        self.attack_probs = [per_robot / _PLANNERS[n][1] for n in self.names]

    @property
    def rnd(self) -> random.Random:
        """The robots' random stream."""
        return self._ctx.rnd

    def adopt(self, other: Robots) -> None:
        """Take over ``other``'s open compromise windows (a change of mix mid-stream)."""
        self._ctx.merchants = other._ctx.merchants
        self._ctx.customers = other._ctx.customers

    def plan(self, robot: int, t: float) -> Planned:
        """The steps of an attack by robot ``robot`` (1-based) starting at event time ``t``."""
        return _PLANNERS[self.names[robot - 1]][0](self._ctx, t)

    @property
    def windows_open(self) -> bool:
        """Whether any merchant or customer is compromised right now."""
        return bool(self._ctx.merchants or self._ctx.customers)

    def intercept(self, kind: int, orig: int, dest: int) -> tuple[str, float] | None:
        """Whether a genuine transaction falls to a compromise: (robot name, amount factor).

        ``dest`` is the drawn destination (a merchant index for PAYMENT/DEBIT). Each call uses
        up one transaction of the open windows it touches.
        """
        ctx = self._ctx
        hit: tuple[str, float] | None = None
        if kind == PAYMENT and dest in ctx.merchants:
            window = ctx.merchants[dest]
            if ctx.rnd.random() < window[1]:
                hit = ("compromised_merchant", 1.0)
            window[0] -= 1
            if window[0] <= 0:
                del ctx.merchants[dest]
        if kind != CASH_IN and orig in ctx.customers:
            window = ctx.customers[orig]
            if hit is None and ctx.rnd.random() < window[1]:
                hit = ("compromised_customer", ctx.rnd.uniform(*_CUSTOMER_FACTOR))
            window[0] -= 1
            if window[0] <= 0:
                del ctx.customers[orig]
        return hit
