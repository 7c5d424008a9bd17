"""Scored history from the store, for backtests: ``fraudstream rules backtest --from --to`` and
the dashboard's rules page call :func:`load_history`.

A stored row keeps the transaction, its features (a float32 BLOB in SQLite, ``real[]`` in
PostgreSQL, named per model version by ``feature_sets``), the model's score and the **final**
decision (the model's thresholds, then the live rules). A backtest needs the model's own
decision: where no live rule fired (``rules_fired IS NULL``) it is the stored one; elsewhere it
is the score against the thresholds of the row's model version (``model_versions.metrics``),
and the stored decision when those are unknown. Labels are the latest verdict per transaction
(``labels`` table and the dashboard's verdicts, as :mod:`fraudstream.sinks._feedback` ranks
them), optionally completed by the row's ground truth (``label``, e.g. the simulator's
``isFraud``). Only the columns asked for are read; SQL is the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Collection, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import SchemaError
from fraudstream.schema import VERDICTS
from fraudstream.sinks._feedback import RANKED_VERDICTS
from fraudstream.sinks._sqlconn import SqlConnection

__all__ = ["BASE_COLUMNS", "history_span", "load_history"]

log = logging.getLogger(__name__)

_HOUR_MS: Final = 3_600_000
#: The rule frame's transaction columns (``rules.Schema`` names) and their stored columns.
_STORED: Final = {
    "type": "kind",
    "account": "account",
    "counterparty": "counterparty",
    "oldbalanceOrg": "old_balance_orig",
    "newbalanceOrig": "new_balance_orig",
    "oldbalanceDest": "old_balance_dest",
    "newbalanceDest": "new_balance_dest",
}
_STRINGS: Final = frozenset({"type", "account", "counterparty"})
#: Columns every loaded history has, beside those asked for: ``decision`` is the model's own
#: (0 allow, 1 review, 2 block), ``final_decision`` the stored one, ``label`` 1 fraud, 0
#: genuine, -1 unknown.
BASE_COLUMNS: Final = {
    "event_time_ms": pl.Int64,
    "amount": pl.Float64,
    "score": pl.Float64,
    "model_version": pl.String,
    "final_decision": pl.Int8,
    "decision": pl.Int8,
    "label": pl.Int8,
}
_BASE_SQL: Final = (
    "t.event_time_ms",
    "t.amount",
    "t.score",
    "t.model_version",
    "CASE t.decision WHEN 'review' THEN 1 WHEN 'block' THEN 2 ELSE 0 END",
    "CASE WHEN t.rules_fired IS NULL THEN 0 ELSE 1 END",
    "r.label",
    "t.label",
)
_QUERY: Final = """WITH {verdicts}
SELECT {columns}
FROM transactions_enriched t LEFT JOIN ranked r ON r.tx_id = t.tx_id AND r.rank = 1
WHERE t.event_time_ms >= ? AND t.event_time_ms < ?"""

F32 = npt.NDArray[np.float32]


def load_history(
    store_url: str,
    start_ms: int,
    end_ms: int,
    columns: Collection[str],
    *,
    pg_schema: str | None = None,
    ground_truth: bool = False,
    chunk_rows: int = 100_000,
) -> pl.DataFrame:
    """The stored transactions with ``start_ms <= event_time_ms < end_ms``, as a frame for
    :func:`fraudstream.rules.backtest`: the rule-frame ``columns`` asked for (transaction fields
    as rules name them — ``type``, ``amount``, ``account``, ``counterparty``, ``hour``,
    balances —, ``score`` and feature names) and :data:`BASE_COLUMNS`.

    ``ground_truth``: a row without a verdict takes its stored ``label``. A feature stored by
    no model version of the store raises :class:`SchemaError` naming it; rows of a version
    without it read it as missing (NaN). An empty range gives an empty frame. The store is
    migrated first, as every command opens it; errors are ``StoreError``.
    """
    db = SqlConnection(store_url, schema=pg_schema)
    db.open()
    try:
        names = _feature_sets(db)
        wanted = sorted(set(columns) - set(BASE_COLUMNS) - {"hour"})
        stored = [c for c in wanted if c in _STORED]
        features = [c for c in wanted if c not in _STORED]
        unknown = [f for f in features if not any(f in n for n in names.values())]
        if unknown:
            raise SchemaError(_unknown_message(unknown, names))
        select = [*_BASE_SQL, *(f"t.{_STORED[c]}" for c in stored)]
        if features:
            select.append("t.features")
        sql = _QUERY.format(verdicts=RANKED_VERDICTS, columns=", ".join(select))
        params = (*VERDICTS, int(start_ms), int(end_ms))
        with contextlib.closing(db.chunks(sql, params, size=chunk_rows)) as chunks:
            parts = [_chunk(rows, stored, features, names, ground_truth) for rows in chunks]
        frame = pl.concat(parts) if parts else _empty(stored, features)
        frame = frame.with_columns(_model_decision(db, frame)).drop("_ruled")
    finally:
        db.close()
    if "hour" in columns:
        frame = frame.with_columns(
            (pl.col("event_time_ms") // _HOUR_MS % 24).cast(pl.Float64).alias("hour")
        )
    return frame


def history_span(store_url: str, *, pg_schema: str | None = None) -> tuple[int, int, int] | None:
    """``(first event time, last event time, rows)`` of the stored transactions, ``None`` when
    there is none (for messages such as "the store holds … to …")."""
    db = SqlConnection(store_url, schema=pg_schema)
    db.open()
    try:
        sql = "SELECT min(event_time_ms), max(event_time_ms), count(*) FROM transactions_enriched"
        first, last, rows = db.rows(sql)[0]
    finally:
        db.close()
    return None if first is None else (int(first), int(last), int(rows))


def _feature_sets(db: SqlConnection) -> dict[str, tuple[str, ...]]:
    """Model version → its stored feature names, in order."""
    out: dict[str, tuple[str, ...]] = {}
    for version, names in db.rows("SELECT model_version, feature_names FROM feature_sets"):
        out[str(version)] = tuple(json.loads(names) if isinstance(names, str) else names)
    return out


def _unknown_message(unknown: list[str], names: dict[str, tuple[str, ...]]) -> str:
    have = sorted({n for v in names.values() for n in v})
    known = f"stored features: {', '.join(have)}" if have else "no features are stored yet"
    return (
        f"the stored transactions have no column {', '.join(map(repr, unknown))} (no model "
        f"version of the store computes it; {known}); check the rule's --mode"
    )


def _chunk(
    rows: list[tuple[Any, ...]],
    stored: list[str],
    features: list[str],
    names: dict[str, tuple[str, ...]],
    ground_truth: bool,
) -> pl.DataFrame:
    cols = list(zip(*rows, strict=True))
    time, amount, score, version, final, ruled, verdict, truth = cols[:8]
    label = pl.Series(verdict, dtype=pl.Int8)
    if ground_truth:
        label = label.fill_null(pl.Series(truth, dtype=pl.Int8))
    data: dict[str, pl.Series] = {
        "event_time_ms": pl.Series(time, dtype=pl.Int64),
        "amount": pl.Series(amount, dtype=pl.Float64),
        "score": pl.Series(score, dtype=pl.Float64),
        "model_version": pl.Series(version, dtype=pl.String),
        "final_decision": pl.Series(final, dtype=pl.Int8),
        "_ruled": pl.Series(ruled, dtype=pl.Int8).cast(pl.Boolean),
        "label": label.fill_null(-1),
    }
    for name, values in zip(stored, cols[8:], strict=False):
        dtype = pl.String if name in _STRINGS else pl.Float64
        data[name] = pl.Series(values, dtype=dtype)
    if features:
        matrix = _features(cols[-1], version, features, names)
        for j, name in enumerate(features):
            data[name] = pl.Series(matrix[:, j])
    return pl.DataFrame(data)


def _features(
    values: Sequence[Any],
    versions: Sequence[str],
    wanted: list[str],
    names: dict[str, tuple[str, ...]],
) -> F32:
    """The ``wanted`` features of each row (NaN where its version has no such feature)."""
    out = np.full((len(values), len(wanted)), np.nan, dtype=np.float32)
    uniq = set(versions)
    for v in uniq:
        rows = np.arange(len(values)) if len(uniq) == 1 else np.flatnonzero(np.array(versions) == v)
        stored = names.get(v, ())
        pos = [(j, stored.index(f)) for j, f in enumerate(wanted) if f in stored]
        if not pos or len(rows) == 0:
            continue
        picked = [values[i] for i in rows.tolist()] if len(uniq) > 1 else values
        matrix = _matrix(picked, len(stored))
        for j, k in pos:
            out[rows, j] = matrix[:, k]
    return out


def _matrix(values: Sequence[Any], width: int) -> F32:
    """Stored feature rows (float32 BLOBs or float arrays) as an ``(n, width)`` matrix."""
    first = values[0]
    if isinstance(first, bytes | bytearray | memoryview):
        flat = np.frombuffer(b"".join(bytes(v) for v in values), dtype="<f4")
        return flat.reshape(len(values), width)
    return np.asarray(values, dtype=np.float32).reshape(len(values), width)


def _empty(stored: list[str], features: list[str]) -> pl.DataFrame:
    schema: dict[str, Any] = {**BASE_COLUMNS, "_ruled": pl.Boolean}
    schema.update({c: pl.String if c in _STRINGS else pl.Float64 for c in stored})
    schema.update({f: pl.Float32 for f in features})
    return pl.DataFrame(schema=schema).drop("decision")


def _model_decision(db: SqlConnection, frame: pl.DataFrame) -> pl.Series:
    """The model's own decision of each row (see the module's notes)."""
    final = frame.get_column("final_decision").to_numpy().astype(np.int8, copy=True)
    ruled = frame.get_column("_ruled").to_numpy()
    if ruled.any():
        thresholds = _thresholds(db)
        versions = frame.get_column("model_version").to_numpy()
        score = frame.get_column("score").fill_null(np.nan).to_numpy()
        unknown = 0
        for v in np.unique(versions[ruled]):
            rows = ruled & (versions == v)
            if v not in thresholds:
                unknown += int(rows.sum())
                continue
            review, block = thresholds[v]
            s = score[rows]
            final[rows] = (s >= review).astype(np.int8) + (s >= block).astype(np.int8)
        if unknown:
            log.warning(
                "%d row(s) decided by a rule have a model version without stored thresholds: "
                "their model decision is taken as the stored one",
                unknown,
            )
    return pl.Series("decision", final, dtype=pl.Int8)


def _thresholds(db: SqlConnection) -> dict[str, tuple[float, float]]:
    """Model version → (review, block) thresholds of its scoring model, from its metrics."""
    out: dict[str, tuple[float, float]] = {}
    for version, text in db.rows("SELECT version, metrics FROM model_versions"):
        try:
            metrics = json.loads(text) if isinstance(text, str) else text
            chosen = metrics[metrics["selection"]["chosen"]]
            out[str(version)] = (
                float(chosen["review"]["threshold"]),
                float(chosen["block"]["threshold"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out
