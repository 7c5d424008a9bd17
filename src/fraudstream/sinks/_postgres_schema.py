"""The PostgreSQL store's schema: the SQLite tables and indexes in PostgreSQL types.

Version ``i + 1`` is ``MIGRATIONS[i]``, in step with ``_sqlite_schema``; never edit a released
migration, append one. JSON columns are ``jsonb``; times are ``bigint`` milliseconds; features
are ``real[]`` (since version 3) named by ``feature_sets``, as SQLite's float32 BLOBs (version 6).
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
    version integer PRIMARY KEY,
    applied_at_ms bigint NOT NULL
)"""

_V1: Final = (
    """
    CREATE TABLE transactions_enriched (
        tx_id text PRIMARY KEY,
        event_time_ms bigint NOT NULL,
        account text NOT NULL,
        counterparty text NOT NULL,
        kind text NOT NULL,
        amount double precision NOT NULL,
        old_balance_orig double precision,
        new_balance_orig double precision,
        old_balance_dest double precision,
        new_balance_dest double precision,
        label smallint,
        step bigint NOT NULL,
        features jsonb NOT NULL,
        score double precision,
        decision text NOT NULL,
        model_version text NOT NULL,
        "partition" integer NOT NULL,
        "offset" bigint NOT NULL,
        processed_at_ms bigint NOT NULL
    )""",
    "CREATE INDEX ix_enriched_event_time ON transactions_enriched (event_time_ms)",
    "CREATE INDEX ix_enriched_account ON transactions_enriched (account, event_time_ms)",
    "CREATE INDEX ix_enriched_decision ON transactions_enriched (decision, event_time_ms)",
    """
    CREATE TABLE fraud_alerts (
        alert_id text PRIMARY KEY,
        tx_id text NOT NULL,
        created_at_ms bigint NOT NULL,
        event_time_ms bigint NOT NULL,
        account text NOT NULL,
        counterparty text NOT NULL,
        amount double precision NOT NULL,
        score double precision NOT NULL,
        decision text NOT NULL,
        reasons jsonb NOT NULL,
        model_version text NOT NULL,
        status text NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'confirmed_fraud', 'false_positive')),
        analyst text,
        reviewed_at_ms bigint
    )""",
    "CREATE INDEX ix_alerts_created_at ON fraud_alerts (created_at_ms)",
    "CREATE INDEX ix_alerts_decision ON fraud_alerts (decision, created_at_ms)",
    "CREATE INDEX ix_alerts_status ON fraud_alerts (status, created_at_ms)",
    """
    CREATE TABLE window_stats (
        window_end_ms bigint PRIMARY KEY,
        window_ms bigint NOT NULL,
        transactions bigint NOT NULL,
        frauds bigint NOT NULL,
        alerts bigint NOT NULL,
        amount double precision NOT NULL,
        fraud_amount double precision NOT NULL
    )""",
    """
    CREATE TABLE model_versions (
        version text PRIMARY KEY,
        metrics jsonb NOT NULL,
        first_seen_ms bigint NOT NULL
    )""",
)

_V2: Final = (
    """
    CREATE TABLE notification_failures (
        alert_id text NOT NULL,
        channel text NOT NULL,
        attempts bigint NOT NULL,
        error text NOT NULL,
        payload jsonb NOT NULL,
        failed_at_ms bigint NOT NULL,
        PRIMARY KEY (alert_id, channel)
    )""",
    "CREATE INDEX ix_notification_failures_at ON notification_failures (failed_at_ms)",
)

#: Delivered notifications (the notifier's de-duplication across restarts); features as
#: ``real[]`` in the order of ``feature_sets`` (existing jsonb rows converted, a JSON null becomes
#: NaN); the decision index only over review/block rows (the hot insert skips it for allows).
_V3: Final = (
    """
    CREATE TABLE notifications_sent (
        alert_id text NOT NULL,
        channel text NOT NULL,
        sent_at_ms bigint NOT NULL,
        PRIMARY KEY (alert_id, channel)
    )""",
    "CREATE INDEX ix_notifications_sent_at ON notifications_sent (sent_at_ms)",
    """
    CREATE TABLE feature_sets (
        model_version text PRIMARY KEY,
        feature_names text[] NOT NULL,
        first_seen_ms bigint NOT NULL
    )""",
    """
    INSERT INTO feature_sets (model_version, feature_names, first_seen_ms)
    SELECT DISTINCT ON (model_version) model_version,
        ARRAY(SELECT k FROM jsonb_object_keys(features) WITH ORDINALITY AS e(k, i) ORDER BY i),
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    FROM transactions_enriched
    ORDER BY model_version, tx_id""",
    "ALTER TABLE transactions_enriched ADD COLUMN features_real real[]",
    """
    UPDATE transactions_enriched t SET features_real = ARRAY(
        SELECT coalesce((t.features ->> u.name)::real, 'NaN'::real)
        FROM unnest(f.feature_names) WITH ORDINALITY AS u(name, i) ORDER BY u.i)
    FROM feature_sets f WHERE f.model_version = t.model_version""",
    "ALTER TABLE transactions_enriched DROP COLUMN features",
    "ALTER TABLE transactions_enriched RENAME COLUMN features_real TO features",
    "ALTER TABLE transactions_enriched ALTER COLUMN features SET NOT NULL",
    "DROP INDEX ix_enriched_decision",
    """
    CREATE INDEX ix_enriched_decision ON transactions_enriched (decision, event_time_ms)
    WHERE decision <> 'allow'""",
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
        score DOUBLE PRECISION NOT NULL,
        decision TEXT NOT NULL,
        processed_at_ms BIGINT NOT NULL,
        PRIMARY KEY (tx_id, model_version)
    )""",
)

#: The dashboard's accounts (scrypt password hashes, never a password; ``NULL``: signs in only
#: through the proxy header) and its audit log (sign-ins, verdicts, account changes). SQLite's
#: version 8.
_V6: Final = (
    """
    CREATE TABLE IF NOT EXISTS dashboard_users (
        name text PRIMARY KEY,
        role text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
        password_hash text,
        created_at_ms bigint NOT NULL
    )""",
    """
    CREATE TABLE IF NOT EXISTS dashboard_audit (
        at_ms bigint NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        target text NOT NULL,
        detail text NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_dashboard_audit_at ON dashboard_audit (at_ms)",
)

#: Labels from ``fraud-labels`` as the detector received them, idempotent on ``label_id``.
#: SQLite's version 9.
_V7: Final = (
    """
    CREATE TABLE IF NOT EXISTS labels (
        label_id text PRIMARY KEY,
        tx_id text NOT NULL,
        account text,
        counterparty text,
        tx_time_ms bigint,
        label smallint NOT NULL CHECK (label IN (0, 1)),
        source text NOT NULL,
        labelled_at_ms bigint NOT NULL,
        alert_id text,
        analyst text,
        reason text,
        recorded_at_ms bigint NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_labels_tx ON labels (tx_id, labelled_at_ms)",
)

#: The fraud team's rules and lists (``sinks._rules_store``): rule-set versions (the whole set
#: as JSON text, shared with SQLite), one audit row per changed rule, named lists, their entries
#: and the log of list changes. SQLite's version 10.
_V8: Final = rules_tables("bigint")

#: The rules that acted on each decision: SQLite's version 11.
_V9: Final = rule_columns("integer", if_not_exists=True)

#: The decision API's keys: SQLite's version 12.
_V10: Final = api_keys_table("bigint")

#: The detector's drift windows (issue 22, ``sinks._drift``): PSI per window, model and
#: feature (or ``score``), and whether the drift alarm held. SQLite's version 13.
_V11: Final = drift_table("bigint", "double precision")

#: The windows where the drift alarm held, indexed for the notifier. SQLite's version 14.
_V12: Final = drift_alarm_index()

#: Every step of a model version's life (``sinks._model_events``). SQLite's version 15.
_V13: Final = model_events_table("bigint")

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
)
