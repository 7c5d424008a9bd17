"""Backtests on the store's recent history, for the Rules & lists page (no Streamlit).

:func:`load_history` reads the stored transactions of a time range as the frame
:func:`fraudstream.rules.backtest` takes: the fields rules name, every feature (decoded with its
model version's ``feature_sets`` names), ``score``, the model's own ``decision`` and ``label``.

- **label**: the latest verdict per transaction (the ``labels`` table and the dashboard's
  verdicts, ranked as ``sinks._feedback`` ranks them), else the transaction's own label (the
  simulator's ``isFraud``), else unknown;
- **decision**: the model's, not the final one. A stored row no live rule fired on was decided
  by the model alone; on a row a live rule fired on, the model's decision is the score against
  the thresholds given (the bundle in service's), or the stored final decision without them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import polars as pl

from fraudstream.dashboard._db import Database
from fraudstream.model._costs import Thresholds, decide
from fraudstream.rules import Backtest
from fraudstream.schema import DECISIONS, VERDICTS
from fraudstream.sinks._feedback import RANKED_VERDICTS

__all__ = [
    "DEFAULT_DAYS",
    "History",
    "backtest_table",
    "default_range",
    "load_history",
    "stored_span",
]

_DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000
#: The default range: this many days up to the newest stored transaction.
DEFAULT_DAYS: Final = 7
_TX: Final = (
    "tx_id, event_time_ms, account, counterparty, kind, amount, old_balance_orig, "
    "new_balance_orig, old_balance_dest, new_balance_dest, label, features, score, decision, "
    "model_version, rules_fired"
)
_SQL: Final = (
    "WITH "
    + RANKED_VERDICTS
    + f"""
SELECT t.*, r.label AS verdict
FROM (SELECT {_TX} FROM transactions_enriched WHERE event_time_ms >= ? AND event_time_ms < ?
      ORDER BY event_time_ms DESC LIMIT ?) t
LEFT JOIN ranked r ON r.tx_id = t.tx_id AND r.rank = 1"""
)
_NAMES: Final = (*(c.strip() for c in _TX.split(",")), "verdict")
#: Store columns → the names rules use for them (``Schema``'s frame columns).
_FIELDS: Final = {
    "account": "account",
    "counterparty": "counterparty",
    "kind": "type",
    "amount": "amount",
    "old_balance_orig": "oldbalanceOrg",
    "new_balance_orig": "newbalanceOrig",
    "old_balance_dest": "oldbalanceDest",
    "new_balance_dest": "newbalanceDest",
    "score": "score",
    "event_time_ms": "event_time_ms",
}


@dataclass(frozen=True, slots=True)
class History:
    """Scored history for a backtest: ``frame`` holds the newest ``limit`` transactions of
    ``[start_ms, end_ms)`` (``truncated``: the range holds more)."""

    frame: pl.DataFrame
    start_ms: int
    end_ms: int
    truncated: bool


def stored_span(db: Database) -> tuple[int, int] | None:
    """The oldest and newest stored event times (``None`` when nothing is stored)."""
    row = db.one("SELECT min(event_time_ms), max(event_time_ms) FROM transactions_enriched")
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def default_range(newest_ms: int, days: int = DEFAULT_DAYS) -> tuple[int, int]:
    """``[start, end)`` covering the ``days`` days up to and including ``newest_ms``."""
    return newest_ms - days * _DAY_MS, newest_ms + 1


def feature_names_by_version(db: Database) -> dict[str, tuple[str, ...]]:
    """Model version → its stored feature names (JSON text in SQLite, an array in PostgreSQL)."""
    return {
        str(version): tuple(json.loads(names) if isinstance(names, str) else names)
        for version, names in db.rows("SELECT model_version, feature_names FROM feature_sets")
    }


def load_history(
    db: Database,
    start_ms: int,
    end_ms: int,
    *,
    limit: int,
    thresholds: Thresholds | None = None,
) -> History:
    """The newest ``limit`` stored transactions with ``start_ms <= event time < end_ms`` as a
    backtest's history (see the module's doc for ``label`` and ``decision``)."""
    rows = db.rows(_SQL, (*VERDICTS, int(start_ms), int(end_ms), int(limit) + 1))
    truncated = len(rows) > limit
    columns = list(zip(*rows[:limit], strict=True))
    cols = dict(zip(_NAMES, columns, strict=True)) if columns else {}
    return History(_frame(db, cols, min(len(rows), limit), thresholds), start_ms, end_ms, truncated)


def _frame(
    db: Database, cols: Mapping[str, Sequence[Any]], n: int, thresholds: Thresholds | None
) -> pl.DataFrame:
    if n == 0:
        return pl.DataFrame(
            {"event_time_ms": [], "decision": [], "label": [], "amount": []},
            schema={
                "event_time_ms": pl.Int64,
                "decision": pl.Int8,
                "label": pl.Int64,
                "amount": pl.Float64,
            },
        )
    data: dict[str, pl.Series] = {
        name: pl.Series(name, cols[column], strict=False) for column, name in _FIELDS.items()
    }
    for name in ("oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest", "score"):
        data[name] = data[name].cast(pl.Float64).fill_null(float("nan"))
    times = np.asarray(cols["event_time_ms"], dtype=np.int64)
    data["hour"] = pl.Series("hour", (times // _HOUR_MS % 24).astype(np.float64))
    data["decision"] = pl.Series("decision", _model_decision(cols, thresholds))
    data["label"] = pl.Series("label", _labels(cols["verdict"], cols["label"]))
    for name, values in _features(db, cols["features"], cols["model_version"]).items():
        data.setdefault(name, pl.Series(name, values))
    return pl.DataFrame(data)


def _labels(verdict: Sequence[Any], own: Sequence[Any]) -> npt.NDArray[np.int64]:
    v = np.array([-1 if x is None else int(x) for x in verdict], dtype=np.int64)
    o = np.array([-1 if x is None else int(x) for x in own], dtype=np.int64)
    return np.where(v >= 0, v, o)


def _model_decision(
    cols: Mapping[str, Sequence[Any]], thresholds: Thresholds | None
) -> npt.NDArray[np.int8]:
    codes = {name: i for i, name in enumerate(DECISIONS)}
    stored = np.array([codes[d] for d in cols["decision"]], dtype=np.int8)
    if thresholds is None:
        return stored
    ruled = np.array([f is not None for f in cols["rules_fired"]], dtype=np.bool_)
    score = np.array([np.nan if s is None else s for s in cols["score"]], dtype=np.float64)
    return np.where(ruled, decide(score, thresholds), stored).astype(np.int8)


def _features(
    db: Database, values: Sequence[Any], versions: Sequence[str]
) -> dict[str, npt.NDArray[np.float64]]:
    """Each feature of each stored model version as a column (NaN where a row's version does
    not have it)."""
    names = feature_names_by_version(db)
    version = np.asarray(versions, dtype=object)
    out: dict[str, npt.NDArray[np.float64]] = {}
    for v in dict.fromkeys(versions):
        fields = names.get(str(v))
        if not fields:
            continue
        rows = np.flatnonzero(version == v)
        matrix = _matrix([values[i] for i in rows.tolist()], len(fields))
        for j, name in enumerate(fields):
            column = out.setdefault(name, np.full(len(values), np.nan))
            column[rows] = matrix[:, j]
    return out


def _matrix(values: Sequence[Any], width: int) -> npt.NDArray[np.float64]:
    """Stored feature rows (float32 BLOBs in SQLite, ``real[]`` in PostgreSQL) as a matrix."""
    if isinstance(values[0], bytes | bytearray | memoryview):
        flat = np.frombuffer(b"".join(bytes(v) for v in values), dtype="<f4")
    else:
        flat = np.asarray(values, dtype=np.float32).ravel()
    return flat.reshape(len(values), width).astype(np.float64)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def backtest_table(result: Backtest, currency: str) -> pd.DataFrame:
    """The per-rule figures as the page shows them: counts, shares in %, costs in currency."""
    rows = []
    for r in result.table.iter_rows(named=True):
        rows.append(
            {
                "rule": r["rule_id"],
                "action": r["action"],
                "status": r["status"],
                "hits": f"{r['hits']:,}",
                "hits/day": _fmt(r["hits_per_day"], ",.1f"),
                "labelled hits": f"{r['labelled_hits']:,}",
                "frauds hit": f"{r['frauds_hit']:,}",
                "precision": _fmt(r["precision"], ".1%"),
                "recall": _fmt(r["recall"], ".1%"),
                "overlap with model alerts": _fmt(r["model_overlap"], ".1%"),
                "cost delta": _fmt(r["cost_delta"], "+,.2f", f" {currency}"),
            }
        )
    return pd.DataFrame(rows)
