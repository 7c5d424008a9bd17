"""Rows and JSON documents built from a scored batch, shared by every sink.

Column order here is the insert order of the store's SQL; alert messages and stored alerts share
the same reasons JSON (a list of ``{feature, value, contribution}`` objects).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from itertools import repeat
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from fraudstream.errors import SchemaError, StoreError
from fraudstream.schema import DECISIONS, KINDS, ScoredBatch

__all__ = [
    "Alert",
    "Reason",
    "alert_rows",
    "check_lengths",
    "decision_names",
    "ENRICHED_WIDTH",
    "enriched_columns",
    "enriched_flat",
    "decode_features",
    "feature_order",
    "features_blobs",
    "json_feature_names",
    "json_features_blob",
    "shadow_rows",
    "kind_names",
    "label_values",
    "reasons_json",
    "rule_columns",
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
    #: ids of the live rules that fired (decision order), of the shadow rules, and the rule
    #: set's version (``None``: no rule set in force)
    rules_fired: list[str] = msgspec.field(default_factory=list)
    rules_shadow: list[str] = msgspec.field(default_factory=list)
    rule_set_version: int | None = None


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


def features_blobs(features: npt.NDArray[np.float32]) -> list[bytes]:
    """Each row of ``features`` as float32 little-endian bytes (the SQLite column's format)."""
    n = len(features)
    if n == 0:
        return []
    raw = np.ascontiguousarray(features, dtype="<f4").tobytes()
    width = len(raw) // n
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def decode_features(blob: bytes, names: Sequence[str]) -> dict[str, float]:
    """A stored features BLOB back to ``name → value`` (``names`` from ``feature_sets``).

    >>> decode_features(features_blobs(np.array([[1.5, 2.0]], np.float32))[0], ["a", "b"])
    {'a': 1.5, 'b': 2.0}
    """
    values = np.frombuffer(blob, dtype="<f4")
    if len(values) != len(names):
        raise SchemaError(
            f"stored features hold {len(values)} values but {len(names)} names were given; "
            "read the names of the row's model version from table feature_sets"
        )
    return dict(zip(names, values.tolist(), strict=True))


def feature_order(
    stored: Sequence[str], names: Sequence[str], version: str, store: str
) -> npt.NDArray[np.intp] | None:
    """The column permutation from ``names`` (a batch's) into ``stored`` (``feature_sets``).

    ``None`` when they are equal; ``StoreError`` (naming ``store``) unless they are the same set.
    """
    if tuple(stored) == tuple(names):
        return None
    if sorted(stored) != sorted(names) or len(set(names)) != len(names):
        raise StoreError(
            f"{store}: model version {version!r} has features {list(names)} but table "
            f"feature_sets holds {list(stored)} for it; give a changed model a new version"
        )
    position = {name: i for i, name in enumerate(names)}
    return np.asarray([position[name] for name in stored], dtype=np.intp)


def json_features_blob(document: str, names_json: str) -> bytes:
    """A JSON features object (the store's format before version 6) as a float32 BLOB.

    Values follow ``names_json`` (a JSON array); null or absent names become NaN.
    """
    values = msgspec.json.decode(document)
    names = msgspec.json.decode(names_json)
    row = [np.nan if values.get(n) is None else values[n] for n in names]
    return np.asarray(row, dtype="<f4").tobytes()


def json_feature_names(document: str) -> str:
    """The names of a JSON features object, in order, as a JSON array."""
    return _encode(list(msgspec.json.decode(document))).decode()


def reasons_json(reasons: Sequence[tuple[str, float, float]]) -> str:
    """Reason codes as a JSON list of ``{feature, value, contribution}``."""
    return _encode([Reason(f, v, c) for f, v, c in reasons]).decode()


def _ids_json(
    per_row: list[tuple[str, ...]] | None, rows: int, cache: dict[tuple[str, ...], str]
) -> list[str | None]:
    """Rule ids per row as JSON arrays, ``None`` where none fired (one encoding per set)."""
    if per_row is None:
        return [None] * rows
    out: list[str | None] = []
    for ids in per_row:
        if not ids:
            out.append(None)
        elif (text := cache.get(ids)) is not None:
            out.append(text)
        else:
            out.append(cache.setdefault(ids, _encode(list(ids)).decode()))
    return out


def rule_columns(batch: ScoredBatch) -> tuple[list[str | None], list[str | None], int | None]:
    """The stored rule columns of ``batch``: live and shadow rule ids fired per row (JSON
    arrays, ``None`` where none fired) and the rule set's version (``None`` when 0: no rules)."""
    n = len(batch)
    cache: dict[tuple[str, ...], str] = {}
    return (
        _ids_json(batch.rules_fired, n, cache),
        _ids_json(batch.rules_shadow, n, cache),
        batch.rule_set_version or None,
    )


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
    if batch.rules_fired is not None:
        columns["rules_fired"] = batch.rules_fired
    if batch.rules_shadow is not None:
        columns["rules_shadow"] = batch.rules_shadow
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


def enriched_columns(
    batch: ScoredBatch, order: npt.NDArray[np.intp] | None = None, *, ingest_block: int = 0
) -> list[Any]:
    """The ``transactions_enriched`` columns of ``batch`` in SQLite's column order: a list of
    values per column, or one value (not a list) where every row has the same.

    Features are float32 BLOBs, their columns permuted by ``order`` if given; NaN binds as NULL.
    """
    check_lengths(batch)
    features = batch.features if order is None else batch.features[:, order]
    tx = batch.tx
    fired, shadow, version = rule_columns(batch)
    return [
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
        features_blobs(features),
        batch.score.tolist(),
        decision_names(batch.decision),
        batch.model_version,
        batch.partition.tolist(),
        batch.offset.tolist(),
        batch.processed_at_ms,
        ingest_block,
        fired,
        shadow,
        version,
    ]


def enriched_flat(
    batch: ScoredBatch, order: npt.NDArray[np.intp] | None = None, *, ingest_block: int = 0
) -> list[Any]:
    """:func:`enriched_columns` row after row in one flat list (``len(batch) × columns``): the
    parameters of multi-row INSERTs, built by slice assignment: no tuple per row for the
    interpreter to allocate and the cycle collector to scan (half the Python cost of a row).
    """
    columns = enriched_columns(batch, order, ingest_block=ingest_block)
    n, width = len(batch), len(columns)
    flat: list[Any] = [None] * (n * width)
    for j, column in enumerate(columns):
        if isinstance(column, list):
            flat[j::width] = column
        elif column is not None:
            flat[j::width] = [column] * n
    return flat


#: Columns of a ``transactions_enriched`` row as :func:`enriched_columns` gives them.
ENRICHED_WIDTH: Final = 23


def alert_rows(batch: ScoredBatch) -> list[tuple[Any, ...]]:
    """One row per review/block transaction, in ``fraud_alerts`` column order."""
    tx = batch.tx
    index = batch.alert_index()
    rows = index.tolist()
    created = batch.processed_at_ms
    cache: dict[tuple[str, ...], str] = {}
    fired, shadow = (
        _ids_json(None if ids is None else [ids[i] for i in rows], len(rows), cache)
        for ids in (batch.rules_fired, batch.rules_shadow)
    )
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
            f,
            s,
            batch.rule_set_version or None,
        )
        for i, t, amount, score, decision, f, s in zip(
            rows,
            tx.event_time_ms[index].tolist(),
            tx.amount[index].tolist(),
            batch.score[index].tolist(),
            decision_names(batch.decision[index]),
            fired,
            shadow,
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
