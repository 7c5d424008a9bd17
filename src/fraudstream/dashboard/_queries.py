"""Every query the dashboard runs, as plain functions of a :class:`Database`.

Each one is bounded by an index range or works on a small table: windows by ``window_end_ms``
(primary key), alerts by ``created_at_ms`` / ``status``, an account's history by
``(account, event_time_ms)`` (in SQLite per block of insertion order), labelled frauds by the
partial index on ``label = 1``, and transaction-level distributions on the newest ``sample``
rows (``event_time_ms`` index). Times are anchored on the newest data, not the wall clock, so a
replayed store reads the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd  # type: ignore[import-untyped]

from fraudstream.dashboard._db import Database
from fraudstream.errors import StoreError
from fraudstream.schema import VERDICTS, WindowStats
from fraudstream.sinks import Feedback, label_feedback
from fraudstream.sinks._model_events import model_events as stored_model_events

__all__ = [
    "ALERT_COLUMNS",
    "AlertRow",
    "account_history",
    "history_sql",
    "alert_counts",
    "alert_queue",
    "alerts_by_minute",
    "alerts_since",
    "count_alerts",
    "decisions_by_kind",
    "drift_series",
    "feedback_by_age",
    "get_alert",
    "labelled_sample",
    "latest_model_version",
    "live_quality",
    "live_summary",
    "model_versions",
    "notification_failures",
    "riskiest",
    "sample_start_ms",
    "score_histogram",
    "trend_series",
    "verdicts_since",
    "window_series",
]

ALERT_COLUMNS: Final = (
    "alert_id",
    "tx_id",
    "created_at_ms",
    "event_time_ms",
    "account",
    "counterparty",
    "amount",
    "score",
    "decision",
    "reasons",
    "model_version",
    "status",
    "analyst",
    "reviewed_at_ms",
    "rules_fired",
    "rules_shadow",
    "rule_set_version",
)
_ALERT_SELECT: Final = "SELECT " + ", ".join(ALERT_COLUMNS) + " FROM fraud_alerts"
_WINDOW_COLUMNS: Final = (
    "window_end_ms",
    "window_ms",
    "transactions",
    "frauds",
    "alerts",
    "amount",
    "fraud_amount",
)
_QUEUE_ORDER: Final = {
    "score": "score DESC, alert_id",
    "newest": "created_at_ms DESC, alert_id",
    "oldest": "created_at_ms ASC, alert_id",
}
_ENTITY: Final = {"account": "account", "counterparty": "counterparty"}


def _frame(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=list(columns))


def live_summary(db: Database) -> WindowStats | None:
    """The newest row of ``window_stats``, or ``None`` when the store has none yet."""
    row = db.one(
        "SELECT " + ", ".join(_WINDOW_COLUMNS) + " FROM window_stats "
        "ORDER BY window_end_ms DESC LIMIT 1"
    )
    if row is None:
        return None
    end, window, tx, frauds, alerts, amount, fraud_amount = row
    return WindowStats(
        int(end), int(window), int(tx), int(frauds), int(alerts), float(amount), float(fraud_amount)
    )


def window_series(db: Database, since_ms: int) -> pd.DataFrame:
    """Window statistics ending at or after ``since_ms`` (one row per second), oldest first."""
    rows = db.rows(
        "SELECT " + ", ".join(_WINDOW_COLUMNS) + " FROM window_stats "
        "WHERE window_end_ms >= ? ORDER BY window_end_ms",
        (since_ms,),
    )
    return _frame(rows, _WINDOW_COLUMNS)


def alerts_since(db: Database, since_ms: int) -> dict[str, int]:
    """Alerts created at or after ``since_ms``, per decision."""
    rows = db.rows(
        "SELECT decision, count(*) FROM fraud_alerts WHERE created_at_ms >= ? GROUP BY decision",
        (since_ms,),
    )
    return {str(d): int(n) for d, n in rows}


def alerts_by_minute(db: Database, since_ms: int) -> pd.DataFrame:
    """Alerts per minute and decision since ``since_ms``: ``minute_ms, decision, alerts``."""
    rows = db.rows(
        "SELECT (created_at_ms / 60000) * 60000 AS minute_ms, decision, count(*) "
        "FROM fraud_alerts WHERE created_at_ms >= ? GROUP BY 1, 2 ORDER BY 1",
        (since_ms,),
    )
    return _frame(rows, ("minute_ms", "decision", "alerts"))


def latest_model_version(db: Database) -> tuple[str, int] | None:
    """The model version the detector saw last and when it first saw it."""
    row = db.one(
        "SELECT version, first_seen_ms FROM model_versions ORDER BY first_seen_ms DESC LIMIT 1"
    )
    return None if row is None else (str(row[0]), int(row[1]))


def model_versions(db: Database) -> list[tuple[str, int, dict[str, Any]]]:
    """Every model version the detector has used: ``(version, first_seen_ms, metrics)``."""
    rows = db.rows(
        "SELECT version, first_seen_ms, metrics FROM model_versions ORDER BY first_seen_ms DESC"
    )
    out = []
    for version, seen, metrics in rows:
        parsed = metrics if isinstance(metrics, dict) else json.loads(metrics or "{}")
        out.append((str(version), int(seen), parsed))
    return out


def model_events(db: Database, limit: int = 20) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    """The latest ``limit`` retraining steps (``fraudstream retrain`` and ``model``), newest
    first: ``(at_ms, version, event, champion then, detail)``."""
    found = stored_model_events(db, limit=limit)
    return [(e.at_ms, e.version, e.event, e.champion or "", e.detail) for e in reversed(found)]


_DRIFT_COLUMNS: Final = ("window_end_ms", "feature", "psi", "alarm")


def drift_series(db: Database, windows: int = 480) -> tuple[str | None, pd.DataFrame]:
    """The newest monitored model version and its last ``windows`` drift windows:
    ``window_end_ms, feature, psi, alarm`` (event time), oldest first; ``(None, empty)`` without
    any."""
    newest = db.one(
        "SELECT model_version FROM model_drift ORDER BY window_end_ms DESC, model_version LIMIT 1"
    )
    if newest is None:
        return None, _frame([], _DRIFT_COLUMNS)
    version = str(newest[0])
    rows = db.rows(
        "SELECT window_end_ms, feature, psi, alarm FROM model_drift WHERE model_version = ? "
        "AND window_end_ms >= (SELECT min(window_end_ms) FROM (SELECT DISTINCT window_end_ms "
        "FROM model_drift WHERE model_version = ? ORDER BY window_end_ms DESC LIMIT ?) AS last) "
        "ORDER BY window_end_ms, feature",
        (version, version, int(windows)),
    )
    return version, _frame(rows, _DRIFT_COLUMNS)


# --- alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    """One stored alert, reasons parsed."""

    alert_id: str
    tx_id: str
    created_at_ms: int
    event_time_ms: int
    account: str
    counterparty: str
    amount: float
    score: float
    decision: str
    reasons: list[dict[str, Any]]
    model_version: str
    status: str
    analyst: str | None
    reviewed_at_ms: int | None
    #: the ids of the live and shadow rules that fired on it, and the rule set's version
    rules_fired: tuple[str, ...] = ()
    rules_shadow: tuple[str, ...] = ()
    rule_set_version: int | None = None


def _ids(stored: Any) -> tuple[str, ...]:
    """Rule ids stored as a JSON array (``NULL``: none)."""
    if stored is None:
        return ()
    ids = stored if isinstance(stored, list) else json.loads(stored)
    return tuple(str(i) for i in ids)


def _alert(row: tuple[Any, ...]) -> AlertRow:
    values = dict(zip(ALERT_COLUMNS, row, strict=True))
    reasons = values["reasons"]
    values["reasons"] = reasons if isinstance(reasons, list) else json.loads(reasons or "[]")
    values["rules_fired"] = _ids(values["rules_fired"])
    values["rules_shadow"] = _ids(values["rules_shadow"])
    return AlertRow(**values)


def alert_counts(db: Database) -> dict[str, int]:
    """Alerts per status (``open``, ``confirmed_fraud``, ``false_positive``)."""
    counts = dict.fromkeys(("open", *VERDICTS), 0)
    for status, n in db.rows("SELECT status, count(*) FROM fraud_alerts GROUP BY status"):
        counts[str(status)] = int(n)
    return counts


def _queue_where(
    status: str | None, decision: str | None, search: str | None
) -> tuple[str, list[Any]]:
    """The queue's filters as SQL: ``status`` (``None``: any), ``decision``, ``search``."""
    clauses: list[str] = []
    params: list[Any] = []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if decision:
        clauses.append("decision = ?")
        params.append(decision)
    term = (search or "").strip()
    if term:
        clauses.append("(account = ? OR counterparty = ? OR alert_id = ? OR tx_id = ?)")
        params.extend([term] * 4)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def alert_queue(
    db: Database,
    status: str | None = "open",
    decision: str | None = None,
    order: str = "score",
    limit: int = 25,
    offset: int = 0,
    search: str | None = None,
) -> list[AlertRow]:
    """One page of alerts with ``status`` (``None``: any; optionally one ``decision``).

    ``search`` keeps the alerts of one account (as sender or recipient) or one transaction id,
    matched exactly. Riskiest first by default.
    """
    if order not in _QUEUE_ORDER:
        raise StoreError(f"unknown queue order {order!r}; use one of {tuple(_QUEUE_ORDER)}")
    where, params = _queue_where(status, decision, search)
    rows = db.rows(
        f"{_ALERT_SELECT}{where} ORDER BY {_QUEUE_ORDER[order]} LIMIT ? OFFSET ?",
        (*params, int(limit), int(offset)),
    )
    return [_alert(r) for r in rows]


def count_alerts(
    db: Database,
    status: str | None = "open",
    decision: str | None = None,
    search: str | None = None,
) -> int:
    """How many alerts :func:`alert_queue` pages through with the same filters."""
    where, params = _queue_where(status, decision, search)
    row = db.one(f"SELECT count(*) FROM fraud_alerts{where}", params)
    return int(row[0]) if row else 0


def get_alert(db: Database, alert_id: str) -> AlertRow | None:
    """The alert ``alert_id``, or ``None``."""
    row = db.one(f"{_ALERT_SELECT} WHERE alert_id = ?", (alert_id,))
    return None if row is None else _alert(row)


def verdicts_since(db: Database, since_ms: int) -> list[AlertRow]:
    """Alerts with a verdict reviewed at or after ``since_ms`` (to republish their labels)."""
    rows = db.rows(
        f"{_ALERT_SELECT} WHERE status IN (?, ?) AND reviewed_at_ms >= ? ORDER BY reviewed_at_ms",
        (*VERDICTS, since_ms),
    )
    return [_alert(r) for r in rows]


_HISTORY_COLUMNS: Final = (
    "event_time_ms",
    "tx_id",
    "kind",
    "amount",
    "counterparty",
    "score",
    "decision",
    "label",
)


#: SQLite indexes an account's rows per block of insertion order (``ingest_block``, see the
#: store's migration 7): one index probe per block, newest first; at most 61 blocks per million
#: rows (an index probe each).
_SQLITE_BLOCKS: Final = """
WITH RECURSIVE blocks(b) AS (
    SELECT max(ingest_block) FROM transactions_enriched
    UNION ALL SELECT b - 1 FROM blocks WHERE b > 0
)"""


def history_sql(dialect: str) -> str:
    """The account-history query (parameters: account, limit) in ``dialect``'s placeholders."""
    select = "SELECT " + ", ".join(_HISTORY_COLUMNS) + " FROM transactions_enriched WHERE "
    if dialect == "sqlite":
        select = _SQLITE_BLOCKS + select + "ingest_block IN blocks AND "
    return select + "account = ? ORDER BY event_time_ms DESC LIMIT ?"


def account_history(db: Database, account: str, limit: int = 20) -> pd.DataFrame:
    """The account's newest transactions by event time (index probes, not a scan)."""
    rows = db.rows(history_sql(db.dialect), (account, int(limit)))
    return _frame(rows, _HISTORY_COLUMNS)


def notification_failures(db: Database, limit: int = 50) -> tuple[int, pd.DataFrame]:
    """How many notifications failed for good, and the newest ``limit`` of them."""
    row = db.one("SELECT count(*) FROM notification_failures")
    columns = ("failed_at_ms", "alert_id", "channel", "attempts", "error")
    rows = db.rows(
        "SELECT " + ", ".join(columns) + " FROM notification_failures "
        "ORDER BY failed_at_ms DESC LIMIT ?",
        (int(limit),),
    )
    return (int(row[0]) if row else 0), _frame(rows, columns)


# --- trends -----------------------------------------------------------------------------------


def trend_series(db: Database, since_ms: int, bucket_ms: int) -> pd.DataFrame:
    """Per time bucket, from the per-second sliding windows ending in it.

    ``tx_per_s`` and ``alerts_per_min`` are the mean over the bucket's windows, ``fraud_rate``
    is frauds / transactions over them (each transaction counts once per window it is in, equally
    in numerator and denominator).
    """
    b = int(bucket_ms)
    rows = db.rows(
        f"SELECT (window_end_ms / {b}) * {b} AS bucket_ms, avg(transactions * 1000.0 / window_ms),"
        " avg(alerts * 60000.0 / window_ms), sum(frauds), sum(transactions),"
        " avg(fraud_amount * 1000.0 / window_ms)"
        " FROM window_stats WHERE window_end_ms >= ? GROUP BY 1 ORDER BY 1",
        (since_ms,),
    )
    frame = _frame(
        rows,
        ("bucket_ms", "tx_per_s", "alerts_per_min", "frauds", "transactions", "fraud_amount_per_s"),
    )
    tx = frame["transactions"].astype(float)
    frame["fraud_rate"] = (frame["frauds"].astype(float) / tx.where(tx > 0)).fillna(0.0)
    return frame


def sample_start_ms(db: Database, sample: int) -> int:
    """``event_time_ms`` of the ``sample``-th newest transaction (0 if the store has fewer)."""
    row = db.one(
        "SELECT event_time_ms FROM transactions_enriched ORDER BY event_time_ms DESC "
        "LIMIT 1 OFFSET ?",
        (max(int(sample) - 1, 0),),
    )
    return int(row[0]) if row else 0


def score_histogram(db: Database, since_ms: int, bins: int = 50) -> pd.DataFrame:
    """Transactions per score bin and label since ``since_ms``: ``bin, label, transactions``."""
    expr = db.bin_expr("score", bins)
    rows = db.rows(
        f"SELECT {expr} AS bin, label, count(*) FROM transactions_enriched "
        "WHERE event_time_ms >= ? AND score IS NOT NULL GROUP BY 1, 2",
        (since_ms,),
    )
    frame = _frame(rows, ("bin", "label", "transactions"))
    frame["bin"] = frame["bin"].clip(upper=bins - 1)
    frame["score_from"] = frame["bin"] / bins
    frame["label"] = frame["label"].map({1: "fraud", 0: "legitimate"}).fillna("unknown")
    out = frame.groupby(["score_from", "label"], as_index=False)["transactions"].sum()
    out["score_to"] = out["score_from"] + 1.0 / bins
    return out


def decisions_by_kind(db: Database, since_ms: int) -> pd.DataFrame:
    """Transactions per kind and decision since ``since_ms``."""
    rows = db.rows(
        "SELECT kind, decision, count(*) FROM transactions_enriched "
        "WHERE event_time_ms >= ? GROUP BY 1, 2",
        (since_ms,),
    )
    return _frame(rows, ("kind", "decision", "transactions"))


def riskiest(db: Database, entity: str, since_ms: int, limit: int = 10) -> pd.DataFrame:
    """Accounts or counterparties with the most alerts since ``since_ms`` (``fraud_alerts``).

    ``frauds`` are labelled frauds to/from them (partial index on ``label = 1``).
    """
    col = _ENTITY.get(entity)
    if col is None:
        raise StoreError(f"unknown entity {entity!r}; use one of {tuple(_ENTITY)}")
    rows = db.rows(
        f"SELECT {col}, count(*) AS alerts, sum(amount), max(score),"
        " sum(CASE WHEN status = 'confirmed_fraud' THEN 1 ELSE 0 END)"
        f" FROM fraud_alerts WHERE created_at_ms >= ? GROUP BY {col}"
        " ORDER BY alerts DESC, 3 DESC LIMIT ?",
        (since_ms, int(limit)),
    )
    frame = _frame(rows, (entity, "alerts", "alerted_amount", "max_score", "confirmed"))
    if frame.empty:
        frame["labelled_frauds"] = []
        return frame
    names = frame[entity].tolist()
    marks = ", ".join("?" * len(names))
    frauds: dict[Any, Any] = dict(
        db.rows(
            f"SELECT {col}, count(*) FROM transactions_enriched"
            f" WHERE label = 1 AND event_time_ms >= ? AND {col} IN ({marks}) GROUP BY {col}",
            (since_ms, *names),
        )
    )
    frame["labelled_frauds"] = [int(frauds.get(n, 0)) for n in names]
    return frame


# --- model ------------------------------------------------------------------------------------


def labelled_sample(db: Database, limit: int) -> pd.DataFrame:
    """The newest ``limit`` scored transactions with a known label, analyst verdicts applied.

    Columns ``tx_id, event_time_ms, score, amount, label`` (1 fraud, 0 legitimate). A verdict
    (``confirmed_fraud`` / ``false_positive``) overrides the transaction's own label and adds
    alerted transactions whose label has not arrived otherwise.
    """
    columns = ("tx_id", "event_time_ms", "score", "amount", "label")
    rows = db.rows(
        "SELECT " + ", ".join(columns) + " FROM transactions_enriched "
        "WHERE label IS NOT NULL AND score IS NOT NULL ORDER BY event_time_ms DESC LIMIT ?",
        (int(limit),),
    )
    frame = _frame(rows, columns)
    verdicts = db.rows(
        "SELECT tx_id, event_time_ms, score, amount, "
        "CASE WHEN status = 'confirmed_fraud' THEN 1 ELSE 0 END FROM fraud_alerts "
        "WHERE status IN (?, ?) ORDER BY reviewed_at_ms DESC LIMIT ?",
        (*VERDICTS, int(limit)),
    )
    if verdicts:
        reviewed = _frame(verdicts, columns)
        if not frame.empty:
            start = int(frame["event_time_ms"].min())
            reviewed = reviewed[reviewed["event_time_ms"] >= start]
        frame = pd.concat([reviewed, frame[~frame["tx_id"].isin(reviewed["tx_id"])]])
    frame["label"] = frame["label"].astype("int8")
    return frame.reset_index(drop=True)


def live_quality(db: Database, since_ms: int, version: str | None) -> dict[str, Any]:
    """Precision and recall of the running model's alerts against the labels that arrived.

    From transactions since ``since_ms`` scored by ``version`` (all versions if ``None``):
    alerted = review or block. Also the analysts' verdicts on those alerts.
    """
    model = " AND model_version = ?" if version else ""
    extra: tuple[Any, ...] = (version,) if version else ()
    decision = db.plain("decision")
    # ``decision <> 'allow'`` selects the partial index ix_enriched_alerted (also in PostgreSQL)
    alerted = db.rows(
        "SELECT label, count(*) FROM transactions_enriched"
        f" WHERE {decision} IN ('review', 'block') AND decision <> 'allow'"
        f" AND event_time_ms >= ?{model} GROUP BY label",
        (since_ms, *extra),
    )
    by_label = {lab: int(n) for lab, n in alerted}
    frauds = db.rows(
        f"SELECT {decision}, count(*) FROM transactions_enriched WHERE label = 1"
        f" AND event_time_ms >= ?{model} GROUP BY {decision}",
        (since_ms, *extra),
    )
    by_decision = {str(d): int(n) for d, n in frauds}
    verdicts = db.rows(
        f"SELECT status, count(*) FROM fraud_alerts WHERE status IN (?, ?)"
        f" AND event_time_ms >= ?{model} GROUP BY status",
        (*VERDICTS, since_ms, *extra),
    )
    by_status = {str(s): int(n) for s, n in verdicts}
    tp = by_label.get(1, 0)
    labelled_alerts = tp + by_label.get(0, 0)
    all_frauds = sum(by_decision.values())
    confirmed = by_status.get("confirmed_fraud", 0)
    reviewed = confirmed + by_status.get("false_positive", 0)
    return {
        "alerts": sum(by_label.values()),
        "labelled_alerts": labelled_alerts,
        "true_alerts": tp,
        "frauds": all_frauds,
        "caught": all_frauds - by_decision.get("allow", 0),
        "precision": tp / labelled_alerts if labelled_alerts else None,
        "recall": (all_frauds - by_decision.get("allow", 0)) / all_frauds if all_frauds else None,
        "reviewed": reviewed,
        "analyst_precision": confirmed / reviewed if reviewed else None,
    }


def feedback_by_age(db: Database) -> list[Feedback]:
    """Alerts per age against the labels so far and ground truth (``sinks._feedback``)."""
    return label_feedback(db.rows)
