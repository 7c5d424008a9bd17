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
``isFraud``). Only the columns asked for are read (:mod:`fraudstream.sinks._history_read`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Final

import polars as pl

from fraudstream.errors import SchemaError
from fraudstream.sinks._history_read import STORED, read_postgres, read_sqlite
from fraudstream.sinks._sqlconn import SqlConnection

__all__ = ["BASE_COLUMNS", "history_span", "load_history"]

log = logging.getLogger(__name__)

_HOUR_MS: Final = 3_600_000
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


def load_history(
    store_url: str,
    start_ms: int,
    end_ms: int,
    columns: Collection[str],
    *,
    pg_schema: str | None = None,
    ground_truth: bool = False,
) -> pl.DataFrame:
    """The stored transactions with ``start_ms <= event_time_ms < end_ms``, as a frame for
    :func:`fraudstream.rules.backtest`: the rule-frame ``columns`` asked for (transaction fields
    as rules name them — ``type``, ``amount``, ``account``, ``counterparty``, ``hour``,
    balances —, ``score`` and feature names) and :data:`BASE_COLUMNS`, in no set order.

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
        stored = [c for c in wanted if c in STORED]
        features = [c for c in wanted if c not in STORED]
        unknown = [f for f in features if not any(f in n for n in names.values())]
        if unknown:
            raise SchemaError(_unknown_message(unknown, names))
        read = read_sqlite if db.dialect == "sqlite" else read_postgres
        raw = read(db, start_ms, end_ms, stored, features, names)
        frame = raw.with_columns(_model_decision(db, raw)) if raw.height else _empty(raw)
    finally:
        db.close()
    label = pl.col("_verdict")
    if ground_truth:
        label = label.fill_null(pl.col("_truth"))
    frame = frame.with_columns(label.fill_null(-1).cast(pl.Int8).alias("label"))
    frame = frame.drop("_ruled", "_verdict", "_truth")
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


def _empty(raw: pl.DataFrame) -> pl.DataFrame:
    """The frame of an empty range, with every column."""
    if raw.width:
        return raw.with_columns(pl.lit(None, pl.Int8).alias("decision"))
    base = {k: v for k, v in BASE_COLUMNS.items() if k != "label"}
    return pl.DataFrame(schema={**base, "_ruled": pl.Int8, "_verdict": pl.Int8, "_truth": pl.Int8})


def _model_decision(db: SqlConnection, frame: pl.DataFrame) -> pl.Expr:
    """The model's own decision of each row (see the module's notes)."""
    decision = pl.col("final_decision")
    ruled = pl.col("_ruled") > 0
    if not (frame.get_column("_ruled") > 0).any():
        return decision.alias("decision")
    thresholds = _thresholds(db)
    version = pl.col("model_version")
    unknown = frame.filter(ruled & ~version.is_in(list(thresholds))).height
    if unknown:
        log.warning(
            "%d row(s) decided by a rule have a model version without stored thresholds: "
            "their model decision is taken as the stored one",
            unknown,
        )
    score = pl.col("score").fill_nan(None)
    for v, (review, block) in thresholds.items():
        model = (score >= review).fill_null(False).cast(pl.Int8) + (score >= block).fill_null(
            False
        ).cast(pl.Int8)
        decision = pl.when(ruled & (version == v)).then(model).otherwise(decision)
    return decision.cast(pl.Int8).alias("decision")


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
