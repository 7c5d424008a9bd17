"""The decision API's keys (``fraudstream apikey``), written once for both stores.

SQLite's migration 12 and PostgreSQL's migration 10: released migrations, so never edit this text;
append a new migration to each store instead. A key is kept as the SHA-256 of its secret, never
the secret itself; ``scopes`` is a comma-separated list (``decide``, ``label``, ``read``).
"""

from __future__ import annotations

__all__ = ["api_keys_table"]


def api_keys_table(big: str) -> tuple[str, ...]:
    """The statements creating ``api_keys``, with ``big`` as the 64-bit integer type."""
    return (
        f"""
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id text PRIMARY KEY,
        name text NOT NULL,
        scopes text NOT NULL,
        secret_sha256 text NOT NULL,
        created_at_ms {big} NOT NULL,
        revoked_at_ms {big}
    )""",
    )
