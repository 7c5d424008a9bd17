"""Rows and JSON documents built from a scored batch, shared by every sink.

Column order here is the insert order of the store's SQL; alert messages and stored alerts share
the same reasons JSON (a list of ``{feature, value, contribution}`` objects).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence, Sized
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from fraudstream.errors import SchemaError
from fraudstream.schema import DECISIONS, KINDS, ScoredBatch

__all__ = [
    "Alert",
    "Reason",
    "alert_rows",
    "check_lengths",
    "decision_names",
    "enriched_rows",
    "features_json",
    "shadow_rows",
    "kind_names",
    "label_values",
    "reasons_json",
]

_KIND_NAMES = np.asarray(KINDS, dtype=object)
_DECISION_NAMES = np.asarray(DECISIONS, dtype=object)
_encode = msgspec.json.Encoder().encode


class Reason(msgspec.Struct, gc=False):
    """One reason code of an alert: a feature, its value and its contribution to the score."""

    feature: str
    value: float
    contribution: float


class Alert(msgspec.Struct, gc=False):
    """The alerts topic's message (JSON); ``alert_id`` equals ``tx_id`` so consumers can dedupe."""

    alert_id: str
    tx_id: str
    decision: str
    score: float
    reasons: list[Reason]
    model_version: str
    event_time_ms: int
    created_at_ms: int
    account: str
    counterparty: str
    kind: str
    amount: float
    label: int | None


def kind_names(codes: npt.NDArray[np.int8]) -> list[str]:
    """Kind codes as names (``KINDS`` order)."""
    names: list[str] = _KIND_NAMES[codes].tolist()
    return names


def decision_names(codes: npt.NDArray[np.int8]) -> list[str]:
    """Decision codes as names (``DECISIONS`` order)."""
    names: list[str] = _DECISION_NAMES[codes].tolist()
    return names


def label_values(labels: npt.NDArray[np.int8]) -> list[int | None]:
    """Labels as ints, ``None`` where unknown (``-1``)."""
    out = labels.astype(object)
    out[labels < 0] = None
    values: list[int | None] = out.tolist()
    return values


@functools.lru_cache(maxsize=16)
def _row_encoder(names: tuple[str, ...]) -> Callable[[list[float]], str]:
    """A fast ``row → JSON object`` encoder for ``names`` (a generated struct when msgspec can)."""
    fields = [f"f{i}" for i in range(len(names))]
    try:
        struct = msgspec.defstruct(
            "Features", fields, rename=dict(zip(fields, names, strict=True)), gc=False
        )
    except ValueError:  # names msgspec cannot rename to (quotes, duplicates): plain dicts
        return lambda row: _encode(dict(zip(names, row, strict=True))).decode()
    return lambda row: _encode(struct(*row)).decode()


def features_json(names: tuple[str, ...], features: npt.NDArray[np.float32]) -> list[str]:
    """Each row of ``features`` as a JSON object ``name → value`` (NaN and ±inf become null)."""
    encode = _row_encoder(names)
    return [encode(row) for row in features.tolist()]


def reasons_json(reasons: Sequence[tuple[str, float, float]]) -> str:
    """Reason codes as a JSON list of ``{feature, value, contribution}``."""
    return _encode([Reason(f, v, c) for f, v, c in reasons]).decode()


def check_lengths(batch: ScoredBatch) -> None:
    """Raise ``SchemaError`` naming the first column whose length differs from the batch's."""
    n = len(batch.tx)
    tx = batch.tx
    columns: dict[str, Sized] = {
        "tx.event_time_ms": tx.event_time_ms,
        "tx.account": tx.account,
        "tx.counterparty": tx.counterparty,
        "tx.kind": tx.kind,
        "tx.amount": tx.amount,
        "tx.old_balance_orig": tx.old_balance_orig,
        "tx.new_balance_orig": tx.new_balance_orig,
        "tx.old_balance_dest": tx.old_balance_dest,
        "tx.new_balance_dest": tx.new_balance_dest,
        "tx.label": tx.label,
        "tx.step": tx.step,
        "features": batch.features,
        "score": batch.score,
        "decision": batch.decision,
        "reasons": batch.reasons,
        "partition": batch.partition,
        "offset": batch.offset,
    }
    for name, column in columns.items():
        if len(column) != n:
            raise SchemaError(
                f"scored batch column {name} has {len(column)} rows, tx_id has {n}; "
                "every column of a ScoredBatch must have one entry per transaction"
            )
    if batch.features.ndim != 2 or batch.features.shape[1] != len(batch.feature_names):
        raise SchemaError(
            f"scored batch features have shape {batch.features.shape} but "
            f"{len(batch.feature_names)} feature names; expected (rows, names)"
        )


def enriched_rows(batch: ScoredBatch) -> Iterator[tuple[Any, ...]]:
    """One row per transaction, in ``transactions_enriched`` column order (NaN binds as NULL)."""
    check_lengths(batch)
    tx = batch.tx
    return zip(
        tx.tx_id,
        tx.event_time_ms.tolist(),
        tx.account,
        tx.counterparty,
        kind_names(tx.kind),
        tx.amount.tolist(),
        tx.old_balance_orig.tolist(),
        tx.new_balance_orig.tolist(),
        tx.old_balance_dest.tolist(),
        tx.new_balance_dest.tolist(),
        label_values(tx.label),
        tx.step.tolist(),
        features_json(batch.feature_names, batch.features),
        batch.score.tolist(),
        decision_names(batch.decision),
        repeat(batch.model_version),
        batch.partition.tolist(),
        batch.offset.tolist(),
        repeat(batch.processed_at_ms),
        strict=False,  # the repeat() columns are endless; the others have equal lengths
    )


def alert_rows(batch: ScoredBatch) -> list[tuple[Any, ...]]:
    """One row per review/block transaction, in ``fraud_alerts`` column order."""
    tx = batch.tx
    index = batch.alert_index()
    created = batch.processed_at_ms
    return [
        (
            tx.tx_id[i],
            tx.tx_id[i],
            created,
            t,
            tx.account[i],
            tx.counterparty[i],
            amount,
            score,
            decision,
            reasons_json(batch.reasons[i]),
            batch.model_version,
        )
        for i, t, amount, score, decision in zip(
            index.tolist(),
            tx.event_time_ms[index].tolist(),
            tx.amount[index].tolist(),
            batch.score[index].tolist(),
            decision_names(batch.decision[index]),
            strict=True,
        )
    ]


def shadow_rows(batch: ScoredBatch) -> list[tuple[Any, ...]]:
    """The challenger's ``shadow_decisions`` rows of ``batch`` (none without a challenger)."""
    shadow = batch.shadow
    if shadow is None:
        return []
    return list(
        zip(
            batch.tx.tx_id,
            repeat(shadow.model_version),
            shadow.score.tolist(),
            decision_names(shadow.decision),
            repeat(batch.processed_at_ms),
            strict=False,  # the repeat() columns are endless
        )
    )
