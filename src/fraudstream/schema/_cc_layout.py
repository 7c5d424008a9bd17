"""The layout of the popular public credit-card dataset (Sparkov-generated, one row per card
payment), made from our card simulator's output so examples and tests need no downloaded data.

Only the layout is the public dataset's: values come from the handbook's simulation (customers
and terminals on a 100 x 100 square, mapped to latitude/longitude). The category is the
simulator's ``TX_CATEGORY`` (customers' habits, frauds skewed to some categories: a real but
partial signal, see ``simulate._card_extras``); city populations are a fixed function of the
customer. The simulator's ``TX_CHANNEL`` is left out: the public dataset has no channel column.
A handbook file without ``TX_CATEGORY`` gets a category fixed by the terminal (no signal).
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = ["CATEGORIES", "CREDIT_CARD_COLUMNS", "credit_card_layout"]

#: The public dataset's columns we emit, in its order (its personal columns left out).
CREDIT_CARD_COLUMNS: Final = (
    "trans_date_trans_time",
    "cc_num",
    "merchant",
    "category",
    "amt",
    "lat",
    "long",
    "city_pop",
    "trans_num",
    "unix_time",
    "merch_lat",
    "merch_long",
    "is_fraud",
)
#: The public dataset's merchant categories.
CATEGORIES: Final = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)
_FIRST_CARD: Final = 4_000_000_000_000_000
_ORIGIN: Final = (33.0, -105.0)  # latitude, longitude of the square's corner
_DEGREES_PER_UNIT: Final = 0.1


def credit_card_layout(
    handbook: pl.DataFrame,
    customer_xy: npt.NDArray[np.float64],
    terminal_xy: npt.NDArray[np.float64],
) -> pl.DataFrame:
    """The handbook-layout ``handbook`` rows (``TRANSACTION_ID``, ``TX_DATETIME``,
    ``CUSTOMER_ID``, ``TERMINAL_ID``, ``TX_AMOUNT``, ``TX_FRAUD``) in the public dataset's layout;
    ``customer_xy`` / ``terminal_xy`` are the simulator's locations, indexed by id."""
    customer = handbook["CUSTOMER_ID"].to_numpy()
    terminal = handbook["TERMINAL_ID"].to_numpy()
    cust_lat, cust_long = _degrees(customer_xy[customer])
    term_lat, term_long = _degrees(terminal_xy[terminal])
    when = handbook["TX_DATETIME"].cast(pl.Datetime("ms"))
    return pl.DataFrame(
        {
            "trans_date_trans_time": when.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "cc_num": _FIRST_CARD + customer.astype(np.int64) * 7_919,
            "merchant": [f"merchant_{t}" for t in terminal.tolist()],
            "category": _categories(handbook, terminal),
            "amt": handbook["TX_AMOUNT"].round(2),
            "lat": cust_lat,
            "long": cust_long,
            "city_pop": 1_000 + (customer.astype(np.int64) * 104_729) % 2_000_000,
            "trans_num": [_trans_num(i) for i in handbook["TRANSACTION_ID"].to_list()],
            "unix_time": when.dt.epoch("s"),
            "merch_lat": term_lat,
            "merch_long": term_long,
            "is_fraud": handbook["TX_FRAUD"].cast(pl.Int64),
        }
    )


def _categories(handbook: pl.DataFrame, terminal: npt.NDArray[np.int64]) -> list[str]:
    if "TX_CATEGORY" in handbook.columns:
        return handbook["TX_CATEGORY"].cast(pl.Utf8).to_list()
    return [CATEGORIES[t % len(CATEGORIES)] for t in terminal.tolist()]


def _degrees(
    xy: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    lat = np.round(_ORIGIN[0] + xy[:, 1] * _DEGREES_PER_UNIT, 6)
    long = np.round(_ORIGIN[1] + xy[:, 0] * _DEGREES_PER_UNIT, 6)
    return lat, long


def _trans_num(tx_id: object) -> str:
    """A 32-hex-digit id like the public dataset's, fixed by the simulator's id."""
    return hashlib.blake2b(str(tx_id).encode(), digest_size=16).hexdigest()
