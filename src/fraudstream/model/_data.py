"""Labelled history from files: PaySim (Kaggle columns) or card (the handbook's layout).

The file is read by :func:`fraudstream.schema._files.read_transactions`, the reader ``replay``
uses too (column matching and mapping, parsing, skipped bad rows, time axis); this module only
turns its rows into a :class:`TxBatch`. It reads no file itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.features import ExtraField
from fraudstream.schema import KINDS, TxBatch
from fraudstream.schema._declare import SchemaDeclaration
from fraudstream.schema._files import read_transactions

__all__ = ["DataFormat", "declared_extras", "read_history"]

log = logging.getLogger(__name__)

DataFormat = Literal["paysim", "card"]


def read_history(
    path: Path,
    fmt: DataFormat | None,
    *,
    columns: Mapping[str, str] | None = None,
    schema: SchemaDeclaration | None = None,
) -> TxBatch:
    """Read a labelled CSV or Parquet file into a time-sorted :class:`TxBatch`.

    ``fmt`` ``None``: the format ``schema`` declares, else the one the columns tell.
    ``schema`` declares which column plays which role (``fraudstream schema``; the mapping
    ``columns`` goes on top of it). The label column is required; rows with a missing or
    invalid required value are skipped (a warning counts them). Time is the file's own axis:
    ``eventTimeMs``/``TX_DATETIME``, else ``step`` hours (or ``TX_TIME_SECONDS``) from the
    epoch, a step's rows spread evenly over its hour in file order, as ``replay`` spreads them
    (so ``hour_of_day`` is ``step % 24``).
    """
    return read_labelled(path, fmt, columns=columns, schema=schema)[0]


def read_labelled(
    path: Path,
    fmt: DataFormat | None,
    *,
    columns: Mapping[str, str] | None = None,
    schema: SchemaDeclaration | None = None,
) -> tuple[TxBatch, DataFormat]:
    """:func:`read_history`, and the file's format (given, declared or told by its columns)."""
    file = read_transactions(
        Path(path), fmt, columns=columns, schema=schema, start_ms=0, require_label=True
    )
    df = file.frame
    if file.format == "card":
        from fraudstream.model._fdh import fdh_batch

        if "TRANSACTION_ID" not in df.columns:
            df = df.with_columns(pl.Series("TRANSACTION_ID", [f"row-{r - 1}" for r in file.rows]))
        return fdh_batch(df.sort(["TX_DATETIME", "TRANSACTION_ID"]), file.extras), "card"
    return _paysim(df, file.event_time_ms, file.rows), "paysim"


def declared_extras(
    schema: SchemaDeclaration, history: TxBatch, fmt: DataFormat = "card"
) -> tuple[ExtraField, ...]:
    """The extra fields ``schema`` declares, named as ``history.extras`` holds them (the file's
    spelling of the column), with their kinds and location pairs; none for PaySim data (its
    models read no extras: a warning says so)."""
    if fmt != "card":
        if schema.extras():
            log.warning("extra fields are model inputs of card data only: PaySim ignores them")
        return ()
    read = {name.strip().lower(): name for name in history.extras}
    return tuple(
        ExtraField(read.get(name.strip().lower(), name), spec.kind, spec.pair)
        for name, spec in schema.extras().items()
        if spec.kind is not None
    )


def _paysim(
    df: pl.DataFrame, event_time_ms: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
) -> TxBatch:
    flagged = df["isFlaggedFraud"].fill_null(0) if "isFlaggedFraud" in df.columns else None
    ids = [f"row-{r - 1}" for r in rows.tolist()]
    if "txId" in df.columns:  # labels name transactions by it
        ids = [t if t is not None else i for t, i in zip(df["txId"].to_list(), ids, strict=True)]
    return TxBatch(
        tx_id=ids,
        event_time_ms=event_time_ms,
        account=df["nameOrig"].to_list(),
        counterparty=df["nameDest"].to_list(),
        kind=df["type"]
        .replace_strict(list(KINDS), list(range(len(KINDS))))
        .to_numpy()
        .astype(np.int8),
        amount=df["amount"].to_numpy().astype(np.float64),
        old_balance_orig=_floats(df, "oldbalanceOrg"),
        new_balance_orig=_floats(df, "newbalanceOrig"),
        old_balance_dest=_floats(df, "oldbalanceDest"),
        new_balance_dest=_floats(df, "newbalanceDest"),
        label=df["isFraud"].to_numpy().astype(np.int8),
        step=df["step"].to_numpy().astype(np.int64),
        flagged=np.zeros(df.height, np.int8) if flagged is None else flagged.to_numpy(),
    )


def _floats(df: pl.DataFrame, column: str) -> npt.NDArray[np.float64]:
    """An optional numeric column (``NaN`` where absent or missing)."""
    if column not in df.columns:
        return np.full(df.height, np.nan)
    return df[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
