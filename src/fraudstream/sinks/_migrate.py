"""The migration runner both stores share: apply the pending versions in order, inside the
caller's transaction, each with its ``schema_migrations`` row."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fraudstream.errors import StoreError

__all__ = ["apply_migrations"]

log = logging.getLogger(__name__)


def apply_migrations(
    execute: Callable[..., Any],
    migrations: Sequence[Sequence[str]],
    *,
    placeholder: str,
    store: str,
    upgrade_hint: str,
) -> None:
    """Run the versions of ``migrations`` not yet in ``schema_migrations`` (1-based, in order).

    ``execute(sql, params=())`` runs one statement on the open transaction; ``placeholder`` is the
    driver's parameter mark (``?`` or ``%s``). Raises ``StoreError`` if the store is newer than
    this code.
    """
    applied = {v for (v,) in execute("SELECT version FROM schema_migrations")}
    if max(applied, default=0) > len(migrations):
        raise StoreError(
            f"{store} has schema version {max(applied)} but this fraudstream knows "
            f"{len(migrations)}; {upgrade_hint}"
        )
    insert = (
        "INSERT INTO schema_migrations (version, applied_at_ms) "
        f"VALUES ({placeholder}, {placeholder})"
    )
    for version, statements in enumerate(migrations, start=1):
        if version in applied:
            continue
        for statement in statements:
            execute(statement)
        execute(insert, (version, int(time.time() * 1000)))
        log.info("%s: applied migration %d", store, version)
