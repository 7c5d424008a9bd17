"""The simulated bank's population: customers (with balances), cash agents, mules and merchants."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Population", "build_population"]

_ID_LOW = 100_000_000  # 9 digits
_ID_HIGH = 2_147_483_647  # 10 digits, like PaySim's ids
_ZERO_BALANCE_SHARE = 0.08
_BALANCE_MEDIAN = 900_000.0  # PaySim's mean old origin balance is ~830,000
_BALANCE_SIGMA = 1.3
_AGENT_BALANCE_FACTOR = 20.0


@dataclass(slots=True)
class Population:
    """Accounts and their mutable state.

    Customer state lives in plain lists (``ids``, ``balance``) because the generator reads and
    writes one account at a time, where lists beat numpy scalars. Accounts opened during the
    simulation (new payees, fan-in collectors) are appended; they are never drawn as the origin of
    a new genuine slot (only of follow-ups such as a cash-out).
    """

    ids: list[str]
    balance: list[float]
    activity_cum: npt.NDArray[np.float64]  # cumulative activity weights of the initial customers
    agents: list[int]  # cash-in/cash-out agents (customer accounts, as in PaySim)
    mules: list[int]  # recruited mules: ordinary-looking customers the robots pay into
    merchant_ids: list[str]
    merchant_cum: npt.NDArray[np.float64]
    used: set[int] = field(default_factory=set)

    @property
    def customers(self) -> int:
        """Customers that originate genuine traffic (the initial population)."""
        return len(self.activity_cum)

    def sample_customers(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Customer indices for uniforms ``u``, weighted by activity."""
        idx = np.searchsorted(self.activity_cum, u * self.activity_cum[-1], side="right")
        out: npt.NDArray[np.int64] = np.minimum(idx, self.customers - 1).astype(np.int64)
        return out

    def sample_merchants(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Merchant indices for uniforms ``u``, weighted by popularity."""
        idx = np.searchsorted(self.merchant_cum, u * self.merchant_cum[-1], side="right")
        out: npt.NDArray[np.int64] = np.minimum(idx, len(self.merchant_ids) - 1).astype(np.int64)
        return out

    def open_account(self, rnd: random.Random) -> int:
        """A brand-new customer account with a zero balance; its index."""
        while True:
            number = rnd.randrange(_ID_LOW, _ID_HIGH)
            if number not in self.used:
                break
        self.used.add(number)
        self.ids.append(f"C{number}")
        self.balance.append(0.0)
        return len(self.ids) - 1


def _unique_numbers(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    """``n`` distinct account numbers in random order."""
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        draw = rng.integers(_ID_LOW, _ID_HIGH, size=n + 16 + n // 20, dtype=np.int64)
        merged = np.concatenate([out, draw])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)]
    return out[:n]


def build_population(rng: np.random.Generator, accounts: int, merchants: int) -> Population:
    """Customers with lognormal balances and activity, 2 % cash agents, 1 % mules, merchants."""
    numbers = _unique_numbers(rng, accounts)
    balance = rng.lognormal(np.log(_BALANCE_MEDIAN), _BALANCE_SIGMA, accounts)
    balance[rng.random(accounts) < _ZERO_BALANCE_SHARE] = 0.0
    order = rng.permutation(accounts)
    n_agents = max(5, accounts // 50)
    n_mules = max(3, accounts // 100)
    agents = order[:n_agents]
    mules = order[n_agents : n_agents + n_mules]
    balance[agents] *= _AGENT_BALANCE_FACTOR
    activity = rng.lognormal(0.0, 1.0, accounts)
    activity[agents] *= 3.0  # agents also pay and transfer more than most
    merchant_numbers = _unique_numbers(rng, merchants)
    return Population(
        ids=[f"C{n}" for n in numbers.tolist()],
        balance=np.round(balance, 2).tolist(),
        activity_cum=np.cumsum(activity),
        agents=agents.tolist(),
        mules=mules.tolist(),
        merchant_ids=[f"M{n}" for n in merchant_numbers.tolist()],
        merchant_cum=np.cumsum(rng.lognormal(0.0, 1.5, merchants)),
        used=set(numbers.tolist()),
    )
