"""Backtests on the store's recent history, for the Rules & lists page (no Streamlit).

The history is :func:`fraudstream.sinks.load_history`'s, as ``fraudstream rules backtest --from
--to`` reads it: only the columns the rules read; the model's own decision (the stored one where
no live rule fired, else the score against its model version's thresholds); the latest verdict
per transaction, else the transaction's own label (``ground_truth``). The page caps a range at
its newest ``limit`` transactions (:func:`capped_start`) so that a click stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pandas as pd  # type: ignore[import-untyped]
import polars as pl

from fraudstream.dashboard._db import Database
from fraudstream.rules import Backtest, Rule, Schema
from fraudstream.rules._backtest import rule_columns
from fraudstream.sinks import load_history

__all__ = [
    "DEFAULT_DAYS",
    "History",
    "backtest_table",
    "capped_start",
    "columns_read",
    "default_range",
    "history",
    "stored_span",
]

_DAY_MS: Final = 86_400_000
#: The default range: this many days up to the newest stored transaction.
DEFAULT_DAYS: Final = 7


@dataclass(frozen=True, slots=True)
class History:
    """Scored history for a backtest: ``frame`` holds the stored transactions of ``[start_ms,
    end_ms)``; ``truncated``: the range asked for began earlier (only its newest rows kept)."""

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


def capped_start(db: Database, start_ms: int, end_ms: int, limit: int) -> int:
    """A start at or after ``start_ms`` such that ``[start, end_ms)`` holds at most ``limit``
    stored transactions, the newest ones (one indexed query)."""
    row = db.one(
        "SELECT event_time_ms FROM transactions_enriched WHERE event_time_ms >= ? AND "
        "event_time_ms < ? ORDER BY event_time_ms DESC LIMIT 1 OFFSET ?",
        (int(start_ms), int(end_ms), int(limit)),
    )
    return start_ms if row is None else int(row[0]) + 1


def columns_read(rules: Sequence[Rule], schema: Schema) -> tuple[str, ...]:
    """The history columns ``rules`` read, sorted; a :class:`RuleError` points at a rule's
    fault (``schema``: the mode's fields)."""
    return tuple(sorted(frozenset().union(*rule_columns(rules, schema).values())))


def history(
    db: Database, columns: Sequence[str], start_ms: int, end_ms: int, *, limit: int
) -> History:
    """The ``columns`` (and ``load_history``'s own) of the newest ``limit`` stored transactions
    of ``[start_ms, end_ms)``."""
    start = capped_start(db, start_ms, end_ms, limit)
    frame = load_history(db.url, start, end_ms, columns, pg_schema=db.schema, ground_truth=True)
    return History(frame, start, end_ms, start > start_ms)


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
