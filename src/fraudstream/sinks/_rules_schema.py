"""The tables of the fraud team's rules and lists, written once for both stores.

They are SQLite's migration 10 and PostgreSQL's migration 8: released migrations, so never edit
this text; append a new migration to each store instead. Times are milliseconds (``big``), JSON is
text in both stores so that every query is shared (``sinks._rules_store``).
"""

from __future__ import annotations

__all__ = ["rules_tables"]


def rules_tables(big: str) -> tuple[str, ...]:
    """The statements creating the rules' and lists' tables, with ``big`` as the 64-bit integer
    type (``INTEGER`` in SQLite, ``bigint`` in PostgreSQL)."""
    return (
        f"""
    CREATE TABLE IF NOT EXISTS rule_set_versions (
        mode text NOT NULL,
        version integer NOT NULL,
        rules text NOT NULL,
        author text NOT NULL,
        created_at_ms {big} NOT NULL,
        comment text NOT NULL,
        PRIMARY KEY (mode, version)
    )""",
        f"""
    CREATE TABLE IF NOT EXISTS rule_changes (
        mode text NOT NULL,
        version integer NOT NULL,
        rule_id text NOT NULL,
        change text NOT NULL CHECK (change IN ('add', 'edit', 'status', 'remove')),
        author text NOT NULL,
        at_ms {big} NOT NULL,
        comment text NOT NULL,
        before text,
        after text,
        diff text NOT NULL,
        PRIMARY KEY (mode, version, rule_id)
    )""",
        "CREATE INDEX IF NOT EXISTS ix_rule_changes_rule ON rule_changes (mode, rule_id, version)",
        f"""
    CREATE TABLE IF NOT EXISTS rule_lists (
        name text PRIMARY KEY,
        kind text NOT NULL,
        description text NOT NULL,
        created_by text NOT NULL,
        created_at_ms {big} NOT NULL
    )""",
        f"""
    CREATE TABLE IF NOT EXISTS rule_list_entries (
        list_name text NOT NULL REFERENCES rule_lists (name),
        value text NOT NULL,
        added_by text NOT NULL,
        added_at_ms {big} NOT NULL,
        expires_at_ms {big},
        reason text NOT NULL,
        PRIMARY KEY (list_name, value)
    )""",
        f"""
    CREATE TABLE IF NOT EXISTS rule_list_changes (
        seq {big} PRIMARY KEY,
        list_name text NOT NULL,
        value text,
        change text NOT NULL CHECK (change IN ('create', 'add', 'remove')),
        author text NOT NULL,
        at_ms {big} NOT NULL,
        expires_at_ms {big},
        reason text NOT NULL
    )""",
    )
