"""Merchant categories and channels of simulated card payments, with a fraud signal that is real
but not a giveaway.

A genuine payment's category comes from its customer's habits (a mix over a few favourite
categories, drawn once per customer, plus a little of everything); its channel follows the
category (``*_net`` categories are online, travel and entertainment half the time) and, in a
shop, the customer's own contactless habit. A fraud's category is partly its victim's habit and
partly its scenario's: skimmed terminals (``compromised_terminal``) at gas stations and grocers,
paid with a cloned magstripe at the counter (``pos``); stolen card details
(``compromised_customer``) and ``card_testing`` mostly online, in shopping_net and misc_net.
Genuine customers shop online too, so a category alone never decides.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from fraudstream.schema._cc_layout import CATEGORIES

__all__ = ["CATEGORIES", "CHANNELS", "Habits"]

#: The channels, in code order.
CHANNELS: Final = ("pos", "contactless", "online")
_POS, _CONTACTLESS, _ONLINE = 0, 1, 2
#: How common each category is overall.
_POPULARITY: Final = {
    "grocery_pos": 0.14,
    "gas_transport": 0.10,
    "home": 0.10,
    "shopping_pos": 0.09,
    "kids_pets": 0.09,
    "shopping_net": 0.07,
    "entertainment": 0.07,
    "food_dining": 0.07,
    "personal_care": 0.07,
    "health_fitness": 0.06,
    "misc_pos": 0.06,
    "misc_net": 0.05,
    "grocery_net": 0.035,
    "travel": 0.03,
}
#: Per fraud scenario (``CARD_ROBOTS`` order): the share of its victim's habit, and the
#: categories the fraudster prefers otherwise.
_FRAUD: Final[tuple[tuple[float, dict[str, float]], ...]] = (
    (0.5, {"shopping_net": 0.35, "shopping_pos": 0.3, "travel": 0.2, "misc_net": 0.15}),
    (0.5, {"gas_transport": 0.6, "grocery_pos": 0.25, "misc_pos": 0.15}),
    (
        0.3,
        {
            "shopping_net": 0.4,
            "misc_net": 0.35,
            "grocery_net": 0.1,
            "travel": 0.1,
            "entertainment": 0.05,
        },
    ),  # fmt: skip
    (0.1, {"misc_net": 0.7, "shopping_net": 0.2, "entertainment": 0.1}),
)
#: Of the skimmed terminals' frauds, this share is a cloned card at the counter.
_CLONED_POS: Final = 0.85
_ONLINE_SOMETIMES: Final = ("travel", "entertainment")

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _distribution(weights: dict[str, float]) -> F64:
    p = np.array([weights.get(c, 0.0) for c in CATEGORIES], dtype=np.float64)
    out: F64 = p / p.sum()
    return out


class Habits:
    """Every customer's category mix and contactless habit, and the draws of a block's
    categories and channels, from ``rng`` alone."""

    def __init__(self, customers: int, rng: np.random.Generator) -> None:
        self._rng = rng
        popular = _distribution(_POPULARITY)
        favourite = rng.dirichlet(3.0 * popular * len(CATEGORIES) / 4.0, size=customers)
        self.mix = 0.9 * favourite + 0.1 * popular
        self.contactless = rng.uniform(0.1, 0.9, customers)
        self._fraud = [(w, _distribution(d)) for w, d in _FRAUD]
        net = np.array([c.endswith("_net") for c in CATEGORIES])
        self._online = np.where(net, 1.0, 0.0)
        self._online[[CATEGORIES.index(c) for c in _ONLINE_SOMETIMES]] = 0.5

    def draw(self, customer: I64, scenario: I8) -> tuple[I8, I8]:
        """Category and channel codes of payments by ``customer`` in ``scenario`` (0 genuine,
        else 1-based into ``CARD_ROBOTS``)."""
        n = len(customer)
        rng = self._rng
        u_cat, u_online, u_shop = rng.random(n), rng.random(n), rng.random(n)
        probs = self.mix[customer]
        for s, (habit, prefer) in enumerate(self._fraud, start=1):
            rows = scenario == s
            probs[rows] = habit * probs[rows] + (1.0 - habit) * prefer
        cum = np.cumsum(probs, axis=1)
        category = np.minimum((u_cat[:, None] > cum).sum(axis=1), len(CATEGORIES) - 1)
        online = u_online < self._online[category]
        shop = np.where(u_shop < self.contactless[customer], _CONTACTLESS, _POS)
        channel = np.where(online, _ONLINE, shop)
        cloned = (scenario == 2) & (u_shop < _CLONED_POS) & ~online
        channel[cloned] = _POS
        return category.astype(np.int8), channel.astype(np.int8)
