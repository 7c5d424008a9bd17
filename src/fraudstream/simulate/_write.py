"""Simulated history to files: columnar chunks (pyarrow) into Parquet or CSV.

PaySim history uses PaySim's Kaggle columns (plus ``eventTimeMs``, ``fraudScenario`` and ``txId``,
the id a labels file refers to); card history uses the Fraud Detection Handbook's columns, so
whatever reads one reads the other. A labels file (:func:`labels_path`) sits beside the history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudstream.errors import ConfigError
from fraudstream.schema import KINDS, TxBatch
from fraudstream.simulate._card import CardColumns
from fraudstream.simulate._card_extras import CATEGORIES, CHANNELS

__all__ = [
    "PAYSIM_COLUMNS",
    "HistoryWriter",
    "card_table",
    "labels_path",
    "paysim_table",
    "write_history",
    "write_labels",
]

#: PaySim's Kaggle columns, then our optional extensions.
PAYSIM_COLUMNS: Final = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
    "eventTimeMs",
    "fraudScenario",
    "txId",
)
_KIND_NAMES: Final = np.array(KINDS)


def paysim_table(batch: TxBatch) -> pa.Table:
    """A simulated PaySim batch as a table with PaySim's column names."""
    return pa.table(
        {
            "step": pa.array(batch.step, pa.int64()),
            "type": pa.array(_KIND_NAMES[batch.kind]),
            "amount": pa.array(batch.amount),
            "nameOrig": pa.array(batch.account, pa.string()),
            "oldbalanceOrg": pa.array(batch.old_balance_orig),
            "newbalanceOrig": pa.array(batch.new_balance_orig),
            "nameDest": pa.array(batch.counterparty, pa.string()),
            "oldbalanceDest": pa.array(batch.old_balance_dest),
            "newbalanceDest": pa.array(batch.new_balance_dest),
            "isFraud": pa.array(batch.label.astype(np.int64)),
            "isFlaggedFraud": pa.array(batch.flagged.astype(np.int64)),
            "eventTimeMs": pa.array(batch.event_time_ms, pa.int64()),
            "fraudScenario": pa.array(batch.scenario, pa.string()),
            "txId": pa.array(batch.tx_id, pa.string()),
        }
    )


def card_table(cols: CardColumns, start_ms: int) -> pa.Table:
    """A card block as a table with the handbook's column names and types.

    ``TX_FRAUD_SCENARIO`` is 0 (genuine) or the 1-based index into ``CARD_ROBOTS`` (1-3 are the
    handbook's scenarios, 4 is card testing). ``TX_CATEGORY`` (the merchant category) and
    ``TX_CHANNEL`` (pos, contactless, online) are ours, after the handbook's columns.
    """
    event_ns = (cols.time_s * 1000 + start_ms) * 1_000_000
    return pa.table(
        {
            "TRANSACTION_ID": pa.array(cols.tx_id, pa.int64()),
            "TX_DATETIME": pa.array(event_ns, pa.timestamp("ns")),
            "CUSTOMER_ID": pa.array(cols.customer, pa.int64()),
            "TERMINAL_ID": pa.array(cols.terminal, pa.int64()),
            "TX_AMOUNT": pa.array(cols.amount, pa.float64()),
            "TX_TIME_SECONDS": pa.array(cols.time_s, pa.int64()),
            "TX_TIME_DAYS": pa.array(cols.time_s // 86_400, pa.int64()),
            "TX_FRAUD": pa.array((cols.scenario > 0).astype(np.int64)),
            "TX_FRAUD_SCENARIO": pa.array(cols.scenario.astype(np.int64)),
            "TX_CATEGORY": pa.array(np.asarray(CATEGORIES)[cols.category], pa.string()),
            "TX_CHANNEL": pa.array(np.asarray(CHANNELS)[cols.channel], pa.string()),
        }
    )


class HistoryWriter:
    """Appends tables to ``path``: Parquet (zstd, one row group per chunk) or CSV, by suffix."""

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ConfigError(f"--out must end in .parquet or .csv, got {path.name}")
        self.path = path
        self._csv = suffix == ".csv"
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (every call must have the same schema)."""
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = (
                pacsv.CSVWriter(self.path, table.schema)
                if self._csv
                else pq.ParquetWriter(self.path, table.schema, compression="zstd")
            )
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_history(
    next_table: Callable[[int], pa.Table],
    path: Path,
    rows: int,
    *,
    chunk: int = 200_000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` rows drawn ``chunk`` at a time from ``next_table(n)``; the rows written."""
    if rows < 0 or chunk < 1:
        raise ConfigError(f"rows must be >= 0 and chunk >= 1, got {rows}, {chunk}")
    written = 0
    with HistoryWriter(path) as writer:
        while written < rows:
            table = next_table(min(chunk, rows - written))
            writer.write(table)
            written += table.num_rows
            if on_progress is not None:
                on_progress(written)
    return written


def labels_path(out: Path) -> Path:
    """Where the labels of history file ``out`` go: ``history.parquet`` ->
    ``history.labels.parquet`` (``.csv`` likewise)."""
    return out.with_name(f"{out.stem}.labels{out.suffix}")


def write_labels(table: pa.Table, path: Path) -> int:
    """Write a labels table (``simulate.label_table``) to ``path``; the rows written."""
    with HistoryWriter(path) as writer:
        writer.write(table)
    return int(table.num_rows)
