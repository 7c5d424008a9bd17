"""Outputs of the detector: the store (SQLite, PostgreSQL), the alerts topic, notifiers."""

from __future__ import annotations

from fraudstream.sinks._alerts import AlertTopicSink, alert_payloads, decision_payloads
from fraudstream.sinks._drift import DriftWindow
from fraudstream.sinks._feedback import Feedback, feedback_line, feedback_lines, label_feedback
from fraudstream.sinks._history import history_span, load_history
from fraudstream.sinks._lists_store import ListChange, ListEntry, ListInfo, ListsSnapshot
from fraudstream.sinks._notifier import run_notifier
from fraudstream.sinks._notify import (
    Dispatcher,
    EmailChannel,
    NotificationLog,
    NotifyError,
    RateLimiter,
    WebhookChannel,
)
from fraudstream.sinks._postgres import PostgresStore
from fraudstream.sinks._rejects import RejectedRow, rejected_row
from fraudstream.sinks._rows import Alert, Reason, decode_features
from fraudstream.sinks._rule_stats import RuleHits, rule_hits
from fraudstream.sinks._rules_store import ChangeToken, RuleChange, RuleSetVersion, RuleStore
from fraudstream.sinks._sqlite import SQLiteStore
from fraudstream.sinks._store import Store, open_store

__all__ = [
    "Alert",
    "AlertTopicSink",
    "ChangeToken",
    "Dispatcher",
    "DriftWindow",
    "EmailChannel",
    "Feedback",
    "ListChange",
    "ListEntry",
    "ListInfo",
    "ListsSnapshot",
    "NotificationLog",
    "NotifyError",
    "RateLimiter",
    "WebhookChannel",
    "PostgresStore",
    "Reason",
    "RejectedRow",
    "RuleChange",
    "RuleHits",
    "RuleSetVersion",
    "RuleStore",
    "SQLiteStore",
    "Store",
    "alert_payloads",
    "decision_payloads",
    "decode_features",
    "feedback_line",
    "feedback_lines",
    "history_span",
    "label_feedback",
    "load_history",
    "open_store",
    "rejected_row",
    "rule_hits",
    "run_notifier",
]
