"""Vectorised random draws for genuine traffic, one chunk of arrival slots at a time."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

from fraudstream.schema import KINDS
from fraudstream.simulate._population import Population

__all__ = [
    "CASH_IN",
    "CASH_OUT",
    "DEBIT",
    "FOLLOW_UP_SHARE",
    "MICRO_BURST_SHARE",
    "MICRO_SHARE",
    "PAYMENT",
    "PAYSIM_SHARES",
    "TRANSFER",
    "Chunk",
    "draw_chunk",
    "follow_ups_per_slot",
    "kind_shares",
]

PAYMENT: Final = KINDS.index("PAYMENT")
TRANSFER: Final = KINDS.index("TRANSFER")
CASH_OUT: Final = KINDS.index("CASH_OUT")
CASH_IN: Final = KINDS.index("CASH_IN")
DEBIT: Final = KINDS.index("DEBIT")

#: PaySim's published type proportions (share of all transactions).
PAYSIM_SHARES: Final = {
    "CASH_OUT": 0.3517,
    "PAYMENT": 0.3381,
    "CASH_IN": 0.2199,
    "TRANSFER": 0.0838,
    "DEBIT": 0.0065,
}
#: Amount model per kind: lognormal (median, sigma) of the draw, before a customer's balance caps
#: it. Calibrated (scripts/simulator_report.py) so the written amounts match PaySim's published
#: mean per type and overall quartiles (docs/simulator.md).
_AMOUNT_MODEL: Final = {
    "PAYMENT": (9_500.0, 0.85),
    "TRANSFER": (650_000.0, 1.45),
    "CASH_OUT": (175_000.0, 0.8),
    "CASH_IN": (140_000.0, 0.6),
    "DEBIT": (3_200.0, 1.0),
}
_MU = np.log(np.array([_AMOUNT_MODEL[k][0] for k in KINDS]))
_SIGMA = np.array([_AMOUNT_MODEL[k][1] for k in KINDS])
#: Share of genuine PAYMENTs that are micro-payments (0.50 to 20.00).
MICRO_SHARE: Final = 0.04
#: Share of micro-payments followed by 1-3 more from the same account within 90 s.
MICRO_BURST_SHARE: Final = 0.25
#: Share of genuine TRANSFER receivers that cash out soon after.
FOLLOW_UP_SHARE: Final = 0.10
_MEAN_BURST = 2.0  # mean of randint(1, 3)
#: Amplitude of the daily activity cycle (busiest at 14:00 UTC, quietest at 02:00 UTC).
_DAY_AMPLITUDE: Final = 0.35
_DAY_MS = 86_400_000.0
_PEAK_MS = 14 * 3_600_000.0


def _records_per_slot() -> float:
    """Genuine records per arrival slot: the slot itself plus its expected follow-ups."""
    g = MICRO_SHARE * MICRO_BURST_SHARE * _MEAN_BURST
    t = PAYSIM_SHARES
    return 1.0 / (1.0 - t["TRANSFER"] * FOLLOW_UP_SHARE - t["PAYMENT"] * g / (1.0 + g))


def follow_ups_per_slot() -> float:
    """Expected genuine follow-up records (cash-outs, micro-payments) per arrival slot."""
    return _records_per_slot() - 1.0


def kind_shares() -> npt.NDArray[np.float64]:
    """Draw probabilities per kind such that, with follow-ups added, output matches PaySim's shares.

    Follow-up cash-outs (after ``FOLLOW_UP_SHARE`` of transfers) and micro-payment bursts are
    extra records; the draw shares are lowered so the final proportions stay on target.
    """
    t = np.array([PAYSIM_SHARES[k] for k in KINDS], dtype=np.float64)
    g = MICRO_SHARE * MICRO_BURST_SHARE * _MEAN_BURST
    total = _records_per_slot()
    s = t * total
    s[PAYMENT] = t[PAYMENT] * total / (1.0 + g)
    s[CASH_OUT] = (t[CASH_OUT] - t[TRANSFER] * FOLLOW_UP_SHARE) * total
    out: npt.NDArray[np.float64] = s / s.sum()
    return out


@dataclass(slots=True)
class Chunk:
    """Draws for ``len(time_ms)`` consecutive genuine arrival slots, as lists (fast to index).

    ``dest`` is a merchant index for PAYMENT/DEBIT and a customer index otherwise; ``u`` decides
    overdrafts, ``v`` the kind-specific choices (whole-balance transfer, new payee, follow-up, micro
    payment); ``frac`` is the share of the balance spent when a draw exceeds it; ``robot`` is 0 or
    the 1-based index of the robot whose attack starts at this slot.
    """

    time_ms: list[float]
    kind: list[int]
    orig: list[int]
    dest: list[int]
    amount: list[float]
    u: list[float]
    v: list[float]
    frac: list[float]
    robot: list[int]

    def head(self, n: int) -> Chunk:
        """The first ``n`` slots."""
        return Chunk(*(getattr(self, f.name)[:n] for f in fields(self)))


def arrival_times(
    rng: np.random.Generator, size: int, start_ms: float, rate_per_s: float
) -> npt.NDArray[np.float64]:
    """Poisson arrivals at ``rate_per_s`` on average, modulated by a mild daily cycle; monotone."""
    gaps = rng.exponential(1000.0 / rate_per_s, size)
    rough = start_ms + np.cumsum(gaps)
    phase = 2.0 * np.pi * ((rough - _PEAK_MS) % _DAY_MS) / _DAY_MS
    intensity = 1.0 + _DAY_AMPLITUDE * np.cos(phase)
    out: npt.NDArray[np.float64] = start_ms + np.cumsum(gaps / intensity)
    return out


def _amounts(
    rng: np.random.Generator, kind: npt.NDArray[np.int64], v: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    amount = np.exp(_MU[kind] + _SIGMA[kind] * rng.standard_normal(len(kind)))
    micro = (kind == PAYMENT) & (v < MICRO_SHARE)
    amount[micro] = rng.uniform(0.5, 20.0, int(micro.sum()))
    out: npt.NDArray[np.float64] = np.maximum(np.round(amount, 2), 0.01)
    return out


def _scaled(amount: npt.NDArray[np.float64], scale: float) -> npt.NDArray[np.float64]:
    if scale == 1.0:
        return amount
    out: npt.NDArray[np.float64] = np.maximum(np.round(amount * scale, 2), 0.01)
    return out


def draw_chunk(
    rng: np.random.Generator,
    pop: Population,
    size: int,
    start_ms: float,
    rate_per_s: float,
    kind_cum: npt.NDArray[np.float64],
    robot_cum: npt.NDArray[np.float64],
    amount_scale: float = 1.0,
) -> Chunk:
    """The next ``size`` genuine slots after ``start_ms`` (``*_cum``: cumulative probabilities);
    drawn amounts are multiplied by ``amount_scale``."""
    times = arrival_times(rng, size, start_ms, rate_per_s)
    kind = np.minimum(np.searchsorted(kind_cum, rng.random(size), side="right"), len(KINDS) - 1)
    orig = pop.sample_customers(rng.random(size))
    u_dest = rng.random(size)
    agents = np.asarray(pop.agents, dtype=np.int64)
    dest = np.select(
        [(kind == PAYMENT) | (kind == DEBIT), (kind == CASH_OUT) | (kind == CASH_IN)],
        [pop.sample_merchants(u_dest), agents[(u_dest * len(agents)).astype(np.int64)]],
        pop.sample_customers(u_dest),
    )
    u = rng.random(size)
    v = rng.random(size)
    robot = np.searchsorted(robot_cum, rng.random(size), side="right") + 1
    robot[robot > len(robot_cum)] = 0
    return Chunk(
        time_ms=times.tolist(),
        kind=kind.tolist(),
        orig=orig.tolist(),
        dest=dest.tolist(),
        amount=_scaled(_amounts(rng, kind, v), amount_scale).tolist(),
        u=u.tolist(),
        v=v.tolist(),
        frac=rng.beta(1.3, 2.5, size).tolist(),
        robot=robot.tolist(),
    )
