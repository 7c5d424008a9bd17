"""The columns rules read, from a scored batch: only those the rules need are built."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.rules._errors import RuleError
from fraudstream.schema import KINDS, ScoredBatch, TxBatch

__all__ = ["TX_COLUMNS", "batch_frame"]

_HOUR_MS: Final = 3_600_000
_KIND_NAMES: Final = np.array(KINDS, dtype=object)

_Column = Callable[[TxBatch], "pl.Series | npt.NDArray[np.generic]"]
#: The transaction's columns (see :class:`~fraudstream.rules.Schema` for the names rules use).
TX_COLUMNS: Final[dict[str, _Column]] = {
    "type": lambda tx: pl.Series(_KIND_NAMES[tx.kind], dtype=pl.String),
    "amount": lambda tx: tx.amount,
    "account": lambda tx: pl.Series(tx.account, dtype=pl.String),
    "counterparty": lambda tx: pl.Series(tx.counterparty, dtype=pl.String),
    "hour": lambda tx: (tx.event_time_ms // _HOUR_MS % 24).astype(np.float64),
    "oldbalanceOrg": lambda tx: tx.old_balance_orig,
    "newbalanceOrig": lambda tx: tx.new_balance_orig,
    "oldbalanceDest": lambda tx: tx.old_balance_dest,
    "newbalanceDest": lambda tx: tx.new_balance_dest,
}


def batch_frame(scored: ScoredBatch, columns: Collection[str] | None = None) -> pl.DataFrame:
    """A frame of ``scored``'s transaction fields, features and ``score`` for rules.

    ``columns`` limits it to those (a rule set's :attr:`~fraudstream.rules.RuleSet.columns`):
    building a string column costs far more than evaluating a rule on it.
    """
    feature_index = {name: i for i, name in enumerate(scored.feature_names)}
    wanted = [*TX_COLUMNS, "score", *feature_index] if columns is None else sorted(set(columns))
    data: dict[str, pl.Series] = {}
    for name in wanted:
        if name in data:
            continue
        if name in TX_COLUMNS:
            data[name] = pl.Series(name, TX_COLUMNS[name](scored.tx))
        elif name == "score":
            data[name] = pl.Series(name, scored.score)
        elif name in feature_index:
            data[name] = pl.Series(name, scored.features[:, feature_index[name]])
        else:
            raise RuleError(f"a scored batch has no column {name!r}")
    return pl.DataFrame(data, height=len(scored)) if data else pl.DataFrame()
