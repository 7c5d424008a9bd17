"""Labelled history from files: PaySim (Kaggle columns) or card (the handbook's layout)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ModelError
from fraudstream.schema import KINDS, PaySimRecord, TxBatch

__all__ = ["DataFormat", "read_history"]

DataFormat = Literal["paysim", "card"]
_HOUR_MS: Final = 3_600_000
#: The PaySim record's required fields (the Kaggle columns without ``isFlaggedFraud``).
_PAYSIM: Final = PaySimRecord.__struct_fields__[:5] + ("isFraud",)
_CARD: Final = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
)


def read_history(
    path: Path, fmt: DataFormat, *, columns: Mapping[str, str] | None = None
) -> TxBatch:
    """Read a CSV or Parquet file into a time-sorted :class:`TxBatch` (balances optional).

    PaySim rows of one ``step`` (hour) keep their file order, one millisecond apart.
    ``columns`` maps target fields to the file's columns (the replay settings' mapping).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no such file: {path}")
    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    df = df.rename({source: target for target, source in (columns or {}).items()})
    need = _PAYSIM if fmt == "paysim" else _CARD
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ModelError(f"{path} lacks the {fmt} columns {missing}; it has {df.columns}")
    return _paysim(df) if fmt == "paysim" else _card(df)


def _paysim(df: pl.DataFrame) -> TxBatch:
    unknown = set(df["type"].unique().to_list()) - set(KINDS)
    if unknown:
        raise ModelError(f"unknown PaySim transaction types {sorted(unknown)}; expected {KINDS}")
    df = df.with_row_index("_row").sort(["step", "_row"])
    step = df["step"].cast(pl.Int64).to_numpy()
    within = df.select(pl.int_range(pl.len()).over("step"))[:, 0].to_numpy().astype(np.int64)
    n = df.height
    flagged = df["isFlaggedFraud"] if "isFlaggedFraud" in df.columns else pl.Series([0] * n)
    return TxBatch(
        tx_id=[f"row-{i}" for i in df["_row"].to_list()],
        event_time_ms=step * _HOUR_MS + within,
        account=df["nameOrig"].cast(pl.Utf8).to_list(),
        counterparty=df["nameDest"].cast(pl.Utf8).to_list(),
        kind=df["type"]
        .replace_strict(list(KINDS), list(range(len(KINDS))))
        .to_numpy()
        .astype(np.int8),
        amount=df["amount"].cast(pl.Float64).to_numpy(),
        old_balance_orig=_floats(df, "oldbalanceOrg"),
        new_balance_orig=_floats(df, "newbalanceOrig"),
        old_balance_dest=_floats(df, "oldbalanceDest"),
        new_balance_dest=_floats(df, "newbalanceDest"),
        label=df["isFraud"].cast(pl.Int8).to_numpy(),
        step=step,
        flagged=flagged.cast(pl.Int8).to_numpy(),
    )


def _floats(df: pl.DataFrame, column: str) -> npt.NDArray[np.float64]:
    """An optional numeric column (``NaN`` where absent)."""
    if column not in df.columns:
        return np.full(df.height, np.nan)
    return df[column].cast(pl.Float64).to_numpy()


def _card(df: pl.DataFrame) -> TxBatch:
    from fraudstream.model._fdh import fdh_batch

    if df["TX_DATETIME"].dtype == pl.Utf8:
        df = df.with_columns(pl.col("TX_DATETIME").str.to_datetime())
    return fdh_batch(df.sort(["TX_DATETIME", "TRANSACTION_ID"]))
