"""The real PostgreSQL the integration tests use (this machine's, trust auth)."""

from __future__ import annotations

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
