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

_KINDS: Final = pl.Series("type", KINDS, dtype=pl.String)

_Column = Callable[[TxBatch], "pl.Series | npt.NDArray[np.generic]"]
#: The transaction's columns (see :class:`~fraudstream.rules.Schema` for the names rules use).
TX_COLUMNS: Final[dict[str, _Column]] = {
    "type": lambda tx: _KINDS.gather(tx.kind),
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
    building a string column costs far more than evaluating a rule on it. Numbers are Float64
    with NaN as null, as rules read them (so evaluation need not convert them again).
    """
    feature_index = {name: i for i, name in enumerate(scored.feature_names)}
    wanted = [*TX_COLUMNS, "score", *feature_index] if columns is None else sorted(set(columns))
    data: dict[str, pl.Series] = {}
    features = [n for n in wanted if n in feature_index and n not in TX_COLUMNS]
    if features:  # one gather and one conversion for every feature column
        block = scored.features[:, [feature_index[n] for n in features]].astype(np.float64).T
        data.update((n, _number(n, values)) for n, values in zip(features, block, strict=True))
    for name in wanted:
        if name in data:
            continue
        if name in TX_COLUMNS:
            column = TX_COLUMNS[name](scored.tx)
            data[name] = (
                column.alias(name) if isinstance(column, pl.Series) else _number(name, column)
            )
        elif name == "score":
            data[name] = _number(name, scored.score)
        else:
            raise RuleError(f"a scored batch has no column {name!r}")
    return pl.DataFrame([data[n] for n in sorted(data)]) if data else pl.DataFrame()


def _number(name: str, values: npt.NDArray[np.generic]) -> pl.Series:
    return pl.Series(name, np.asarray(values, dtype=np.float64), nan_to_null=True)
