"""The rules that acted on each decision, as columns of the stored rows, for both stores.

SQLite's migration 11 and PostgreSQL's migration 9: released migrations, so never edit this text;
append a new migration to each store instead. The ids are JSON arrays in text (as the rules'
tables keep JSON), so the per-rule statistics read them with each store's JSON functions.
"""

from __future__ import annotations

__all__ = ["rule_columns"]

_TABLES = ("transactions_enriched", "fraud_alerts")


def rule_columns(integer: str, *, if_not_exists: bool = False) -> tuple[str, ...]:
    """The statements adding ``rules_fired``, ``rules_shadow`` (JSON arrays of rule ids, NULL
    when none fired) and ``rule_set_version`` (``integer``; NULL: no rule set) to the enriched
    transactions and the alerts, and a partial index over the rows some rule fired on.
    ``if_not_exists``: PostgreSQL's guard (SQLite has none for a column)."""
    add = "ADD COLUMN IF NOT EXISTS" if if_not_exists else "ADD COLUMN"
    added = tuple(
        f"ALTER TABLE {table} {add} {column}"
        for table in _TABLES
        for column in ("rules_fired text", "rules_shadow text", f"rule_set_version {integer}")
    )
    return (
        *added,
        """
    CREATE INDEX IF NOT EXISTS ix_enriched_rule_hits ON transactions_enriched (event_time_ms)
    WHERE rules_fired IS NOT NULL OR rules_shadow IS NOT NULL""",
    )
