"""Scoring a whole history with a bundle, as the detector scores the same records.

The rows are replayed in event-time order through a fresh feature engine of the bundle's mode
(:func:`~fraudstream.model._train.replay`, the function training uses), with the label records
the detector would have read; then one :meth:`Bundle.score`, :meth:`Bundle.decide` and
:meth:`Bundle.explain_alerts`, as the detector does per batch. A row's own label is never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ModelError
from fraudstream.model._bundle import Bundle
from fraudstream.model._data import _paysim
from fraudstream.model._fdh import fdh_batch
from fraudstream.model._train import Progress, label_book, replay
from fraudstream.schema import LabelMessage, TxBatch
from fraudstream.schema._files import TransactionFile
from fraudstream.schema._label_files import complete_labels

__all__ = [
    "Scored",
    "check_extras",
    "check_format",
    "complete_from",
    "file_batch",
    "score_history",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: A reason code: ``(feature, value, contribution in log-odds)``.
Reason = tuple[str, float, float]


@dataclass(frozen=True)
class Scored:
    """Per row of a history: its features, score, decision (0 allow, 1 review, 2 block) and
    reason codes (none for an allowed row)."""

    features: F32
    score: F64
    decision: npt.NDArray[np.int8]
    reasons: list[list[Reason]]


def file_batch(file: TransactionFile) -> TxBatch:
    """A transaction file's rows as a batch, in the file's event-time order (replay's order).

    Ids are the file's (``txId``, ``TRANSACTION_ID``), else ``row-N`` (N from 0, in file order).
    ``label`` is the file's fraud column where it has one (for evaluation), else -1.
    """
    df = file.frame
    if file.format == "card":
        if "TRANSACTION_ID" not in df.columns:
            ids = pl.Series("TRANSACTION_ID", [f"row-{r - 1}" for r in file.rows.tolist()])
            df = df.with_columns(ids)
        return fdh_batch(df, file.extras)
    if "isFraud" not in df.columns:
        df = df.with_columns(pl.lit(-1, pl.Int8).alias("isFraud"))
    return _paysim(df.with_columns(pl.col("isFraud").fill_null(-1)), file.event_time_ms, file.rows)


def complete_from(history: TxBatch, labels: Sequence[LabelMessage]) -> list[LabelMessage]:
    """``labels`` with a missing account, counterparty or transaction time taken from their
    transaction's row in ``history`` (by ``tx_id``), as ``replay`` completes them."""
    facts = {
        tx: (history.account[i], history.counterparty[i], int(history.event_time_ms[i]))
        for i, tx in enumerate(history.tx_id)
    }
    return complete_labels(labels, facts)[0]


def score_history(
    bundle: Bundle,
    history: TxBatch,
    *,
    labels: Sequence[LabelMessage] = (),
    partitions: int = 1,
    progress: Progress | None = None,
    explain: bool = True,
) -> Scored:
    """Features, scores, decisions and reasons of every row of a time-sorted ``history``.

    ``labels``: the label records the detector reads (``fraud-labels``); a row's label features
    see those known at its event time. ``partitions``: the transactions topic's partition count
    (rows are partitioned by account as the producers partition them). ``progress(done, total)``
    follows the feature replay. ``explain=False``: no reasons yet (rules change decisions first).
    """
    if np.any(np.diff(history.event_time_ms) < 0):
        raise ModelError("score_history needs the history in event-time order")
    check_extras(bundle, history)
    book = label_book(labels)
    x = replay(
        history, bundle.mode, progress, partitions=partitions, labels=book, extras=bundle.extras
    )
    score = bundle.score(x)
    decision = bundle.decide(score)
    reasons = bundle.explain_alerts(x, decision) if explain else [[] for _ in range(len(x))]
    return Scored(x, score, decision, reasons)


def check_extras(bundle: Bundle, history: TxBatch) -> None:
    """Raise :class:`ModelError` unless ``history`` holds every extra field ``bundle`` reads
    (a file read without them would score them all as missing)."""
    absent = [n for n in bundle.extras.names_read if n not in history.extras]
    if absent:
        raise ModelError(
            f"bundle {bundle.version} reads the extra field(s) {', '.join(absent)}, which were "
            "not read from the file: declare them as at training (--schema)"
        )


def check_format(bundle: Bundle, fmt: str) -> None:
    """Raise :class:`ModelError` unless ``bundle`` scores transactions of format ``fmt``."""
    wanted = "card" if bundle.mode == "card" else "paysim"
    if fmt != wanted:
        raise ModelError(
            f"bundle {bundle.version} ({bundle.mode} mode) scores {wanted} transactions, the "
            f"file is {fmt}: give a {wanted} file or a {fmt} bundle"
        )
