"""The review queue as a table: on screen (one page) and as CSV (every alert the filters keep).

Pure functions of a :class:`Database` and stored alerts (no Streamlit): the page and the CSV
export build their rows here, so the file holds what the screen shows, filtered the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pandas as pd  # type: ignore[import-untyped]

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._db import Database
from fraudstream.dashboard._text import csv_column, describe_reason, safe_text
from fraudstream.features import feature_label

__all__ = ["EXPORT_MAX_ROWS", "STATUS_NAMES", "queue_csv", "queue_table", "top_reason"]

#: The most alerts one CSV export holds (the newest first when the order says so).
EXPORT_MAX_ROWS: Final = 100_000
STATUS_NAMES: Final = {
    "open": "open",
    "confirmed_fraud": "confirmed fraud",
    "false_positive": "false positive",
}
_TEXT_COLUMNS: Final = (
    "alert_id",
    "tx_id",
    "account",
    "counterparty",
    "currency",
    "decision",
    "status",
    "analyst",
    "model_version",
    "reasons",
)


def _utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def top_reason(alert: q.AlertRow) -> str:
    """The readable name of the alert's strongest reason (``""`` without reasons)."""
    return feature_label(str(alert.reasons[0]["feature"])).text if alert.reasons else ""


def queue_table(alerts: list[q.AlertRow], currency: str) -> pd.DataFrame:
    """The queue page's table: one row per alert, text made inert, times in UTC."""
    return pd.DataFrame(
        {
            "score": [a.score for a in alerts],
            "decision": [a.decision for a in alerts],
            f"amount ({currency})": [a.amount for a in alerts],
            "account": [safe_text(a.account) for a in alerts],
            "counterparty": [safe_text(a.counterparty) for a in alerts],
            "top reason": [top_reason(a) for a in alerts],
            "created (UTC)": [_utc(a.created_at_ms) for a in alerts],
            "status": [STATUS_NAMES.get(a.status, safe_text(a.status)) for a in alerts],
            "alert_id": [safe_text(a.alert_id) for a in alerts],
        }
    )


def _utc_column(ms: list[int | None]) -> pd.Series:
    times = pd.to_datetime(pd.Series(ms, dtype="Int64"), unit="ms", utc=True)
    return times.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")


def _export_frame(alerts: list[q.AlertRow], currency: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "alert_id": [a.alert_id for a in alerts],
            "tx_id": [a.tx_id for a in alerts],
            "created_utc": _utc_column([a.created_at_ms for a in alerts]),
            "event_time_utc": _utc_column([a.event_time_ms for a in alerts]),
            "account": [a.account for a in alerts],
            "counterparty": [a.counterparty for a in alerts],
            "amount": [a.amount for a in alerts],
            "currency": [currency] * len(alerts),
            "score": [a.score for a in alerts],
            "decision": [a.decision for a in alerts],
            "status": [a.status for a in alerts],
            "analyst": [a.analyst for a in alerts],
            "reviewed_utc": _utc_column([a.reviewed_at_ms for a in alerts]),
            "model_version": [a.model_version for a in alerts],
            "reasons": ["; ".join(describe_reason(r, currency) for r in a.reasons) for a in alerts],
        }
    )
    for column in _TEXT_COLUMNS:
        frame[column] = csv_column(frame[column])
    return frame


def queue_csv(
    db: Database,
    *,
    status: str | None,
    decision: str | None,
    order: str,
    search: str | None,
    currency: str,
    limit: int = EXPORT_MAX_ROWS,
) -> str:
    """Every alert the queue's filters keep (up to ``limit``), in the queue's order, as CSV.

    Text cells are inert (:func:`~fraudstream.dashboard._text.csv_cell`: no control character,
    never a spreadsheet formula); reasons are the sentences the page shows.
    """
    alerts = q.alert_queue(db, status, decision, order, int(limit), 0, search)
    text: str = _export_frame(alerts, currency).to_csv(index=False, lineterminator="\n")
    return text
