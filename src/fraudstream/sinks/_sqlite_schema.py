"""The SQLite store's schema as ordered migrations: version ``i + 1`` is ``MIGRATIONS[i]``.

Never edit a released migration; append a new one. Each is a tuple of single SQL statements run
in one transaction together with its ``schema_migrations`` row.
"""

from __future__ import annotations

from typing import Final

from fraudstream.sinks._api_keys_schema import api_keys_table
from fraudstream.sinks._drift import drift_alarm_index, drift_table
from fraudstream.sinks._model_events import model_events_table
from fraudstream.sinks._rule_hits_schema import rule_columns
from fraudstream.sinks._rules_schema import rules_tables

__all__ = ["CREATE_MIGRATIONS_TABLE", "MIGRATIONS"]

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
)"""

_V1: Final = (
    """
    CREATE TABLE transactions_enriched (
        tx_id TEXT PRIMARY KEY,
        event_time_ms INTEGER NOT NULL,
        account TEXT NOT NULL,
        counterparty TEXT NOT NULL,
        kind TEXT NOT NULL,
        amount REAL NOT NULL,
        old_balance_orig REAL,
        new_balance_orig REAL,
        old_balance_dest REAL,
        new_balance_dest REAL,
        label INTEGER,
        step INTEGER NOT NULL,
        features TEXT NOT NULL,
        score REAL,
        decision TEXT NOT NULL,
        model_version TEXT NOT NULL,
        "partition" INTEGER NOT NULL,
        "offset" INTEGER NOT NULL,
        processed_at_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX ix_enriched_event_time ON transactions_enriched (event_time_ms)",
    "CREATE INDEX ix_enriched_account ON transactions_enriched (account, event_time_ms)",
    "CREATE INDEX ix_enriched_decision ON transactions_enriched (decision, event_time_ms)",
    """
    CREATE TABLE fraud_alerts (
        alert_id TEXT PRIMARY KEY,
        tx_id TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        event_time_ms INTEGER NOT NULL,
        account TEXT NOT NULL,
        counterparty TEXT NOT NULL,
        amount REAL NOT NULL,
        score REAL NOT NULL,
        decision TEXT NOT NULL,
        reasons TEXT NOT NULL,
        model_version TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'confirmed_fraud', 'false_positive')),
        analyst TEXT,
        reviewed_at_ms INTEGER
    )""",
    "CREATE INDEX ix_alerts_created_at ON fraud_alerts (created_at_ms)",
    "CREATE INDEX ix_alerts_decision ON fraud_alerts (decision, created_at_ms)",
    "CREATE INDEX ix_alerts_status ON fraud_alerts (status, created_at_ms)",
    """
    CREATE TABLE window_stats (
        window_end_ms INTEGER PRIMARY KEY,
        window_ms INTEGER NOT NULL,
        transactions INTEGER NOT NULL,
        frauds INTEGER NOT NULL,
        alerts INTEGER NOT NULL,
        amount REAL NOT NULL,
        fraud_amount REAL NOT NULL
    )""",
    """
    CREATE TABLE model_versions (
        version TEXT PRIMARY KEY,
        metrics TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL
    )""",
)

_V2: Final = (
    """
    CREATE TABLE notification_failures (
        alert_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT NOT NULL,
        payload TEXT NOT NULL,
        failed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (alert_id, channel)
    )""",
    "CREATE INDEX ix_notification_failures_at ON notification_failures (failed_at_ms)",
)

#: Delivered notifications: the notifier's de-duplication across restarts. (PostgreSQL's
#: version 3 also turns its features into ``real[]``; SQLite does so in version 6.)
_V3: Final = (
    """
    CREATE TABLE notifications_sent (
        alert_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        PRIMARY KEY (alert_id, channel)
    )""",
    "CREATE INDEX ix_notifications_sent_at ON notifications_sent (sent_at_ms)",
)

#: The dashboard's indexes, all small: labelled frauds and alerted rows (partial, covering the
#: live precision/recall and riskiest-entity queries) and the review queue ordered by score.
_V4: Final = (
    """
    CREATE INDEX IF NOT EXISTS ix_enriched_fraud ON transactions_enriched
    (event_time_ms, decision, model_version, counterparty, account) WHERE label = 1""",
    """
    CREATE INDEX IF NOT EXISTS ix_enriched_alerted ON transactions_enriched
    (event_time_ms, label, model_version) WHERE decision <> 'allow'""",
    "CREATE INDEX IF NOT EXISTS ix_alerts_status_score ON fraud_alerts (status, score)",
)

#: A challenger model scored in shadow: its score and decision beside the champion's row.
_V5: Final = (
    """
    CREATE TABLE IF NOT EXISTS shadow_decisions (
        tx_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        score REAL NOT NULL,
        decision TEXT NOT NULL,
        processed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (tx_id, model_version)
    )""",
)

#: Features as a float32 little-endian BLOB in the order of ``feature_sets`` (as PostgreSQL's
#: ``real[]``): a JSON object per row cost more to build than the rest of the row. Existing JSON
#: rows are converted (a JSON null becomes NaN) with the store's ``fs_json_features_*`` functions.
#: The decision index becomes partial.
_V6: Final = (
    """
    CREATE TABLE IF NOT EXISTS feature_sets (
        model_version TEXT PRIMARY KEY,
        feature_names TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL
    )""",
    """
    INSERT OR IGNORE INTO feature_sets (model_version, feature_names, first_seen_ms)
    SELECT model_version, fs_json_feature_names(min(features)), min(processed_at_ms)
    FROM transactions_enriched WHERE typeof(features) = 'text' GROUP BY model_version""",
    """
    UPDATE transactions_enriched SET features = fs_json_features_blob(
        features, (SELECT s.feature_names FROM feature_sets s
                   WHERE s.model_version = transactions_enriched.model_version))
    WHERE typeof(features) = 'text'""",
    # only review/block rows, as in PostgreSQL: the hot insert of an allowed row skips it
    "DROP INDEX IF EXISTS ix_enriched_decision",
    """
    CREATE INDEX ix_enriched_decision ON transactions_enriched (decision, event_time_ms)
    WHERE decision <> 'allow'""",
)

#: An account's history indexed per block of insertion order (``ingest_block``: a few batches,
#: see the store's ``_BLOCK_ROWS``; the rows stored before this version form block 0). A new
#: batch's rows then land in the small subtree of the newest block instead of random leaves of
#: one index over every row, so a commit writes far fewer pages: the store alone, 1.2 M rows in
#: batches of 20,000, went from 10.1 to 5.2 µs per row (docs/benchmarks.md). The history query
#: probes each block's subtree.
_V7: Final = (
    "ALTER TABLE transactions_enriched ADD COLUMN ingest_block INTEGER NOT NULL DEFAULT 0",
    "DROP INDEX IF EXISTS ix_enriched_account",
    """
    CREATE INDEX ix_enriched_account_block ON transactions_enriched
    (ingest_block, account, event_time_ms)""",
)

#: The dashboard's accounts (scrypt password hashes, never a password; ``NULL``: signs in only
#: through the proxy header) and its audit log (sign-ins, verdicts, account changes).
_V8: Final = (
    """
    CREATE TABLE IF NOT EXISTS dashboard_users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
        password_hash TEXT,
        created_at_ms INTEGER NOT NULL
    )""",
    """
    CREATE TABLE IF NOT EXISTS dashboard_audit (
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_dashboard_audit_at ON dashboard_audit (at_ms)",
)

#: Labels from ``fraud-labels`` (``schema.LabelMessage``) as the detector received them: verdicts
#: that arrive late and on their own channel, idempotent on ``label_id``. The feedback metrics
#: (``sinks._feedback``) read the latest one per ``tx_id``. PostgreSQL's version 7.
_V9: Final = (
    """
    CREATE TABLE IF NOT EXISTS labels (
        label_id TEXT PRIMARY KEY,
        tx_id TEXT NOT NULL,
        account TEXT,
        counterparty TEXT,
        tx_time_ms INTEGER,
        label INTEGER NOT NULL CHECK (label IN (0, 1)),
        source TEXT NOT NULL,
        labelled_at_ms INTEGER NOT NULL,
        alert_id TEXT,
        analyst TEXT,
        reason TEXT,
        recorded_at_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_labels_tx ON labels (tx_id, labelled_at_ms)",
)

#: The fraud team's rules and lists (issue 19, ``sinks._rules_store``): every change to a mode's
#: rule set saves the whole set as the next version (``rules``: JSON) with one audit row per rule
#: it changed (the rule before and after, as JSON, and a readable diff); named lists, their
#: entries (optional expiry) and the log of every list change (``seq``: the lists' change token).
#: PostgreSQL's version 8.
_V10: Final = rules_tables("INTEGER")

#: The rules that acted on each decision (issue 19): per enriched transaction and alert, the ids
#: of the live and of the shadow rules that fired (JSON arrays, NULL when none did) and the rule
#: set version in force (NULL: none). A partial index over the rows some rule fired on serves
#: the per-rule statistics. PostgreSQL's version 9.
_V11: Final = rule_columns("INTEGER")

#: The decision API's keys (``fraudstream apikey``, issue 20): SHA-256 of the secret, scopes,
#: revocation time. PostgreSQL's version 10.
_V12: Final = api_keys_table("INTEGER")

#: The detector's drift windows (issue 22, ``sinks._drift``): PSI per window, model and
#: feature (or ``score``), and whether the drift alarm held. PostgreSQL's version 11.
_V13: Final = drift_table("INTEGER", "REAL")

#: The windows where the drift alarm held, indexed for the notifier. PostgreSQL's version 12.
_V14: Final = drift_alarm_index()

#: Every step of a model version's life (issue 22, ``sinks._model_events``): trained,
#: evaluated, shadow started, promoted, rejected, rolled back. PostgreSQL's version 13.
_V15: Final = model_events_table("INTEGER")

#: Every migration in order; the store's schema version is ``len(MIGRATIONS)``.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6,
    _V7,
    _V8,
    _V9,
    _V10,
    _V11,
    _V12,
    _V13,
    _V14,
    _V15,
)
