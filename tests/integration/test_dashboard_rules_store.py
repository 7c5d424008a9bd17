"""The Rules & lists page's helpers on the real PostgreSQL: the SQLite unit tests of
``tests/unit/test_dashboard_rules.py`` run again over the same seed in a fresh schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fraudstream.dashboard import Database
from fraudstream.sinks import RuleStore

from ..unit.test_dashboard_rules import (  # noqa: F401 (collected here, on PostgreSQL)
    seed_rules_store,
    test_backtest_on_loaded_history,
    test_changes_are_signed_audited_and_refused_without_the_role,
    test_history_of_a_range_capped_at_its_newest_rows,
    test_history_text_reads_like_the_command_line,
    test_list_changes_are_signed_and_need_the_role,
    test_rules_table_shows_each_rules_record,
)
from ._pg_util import PG_URL


@pytest.fixture
def db(pg_schema: str) -> Iterator[Database]:
    seed_rules_store(PG_URL, {"ana": "analyst", "vic": "viewer"}, schema=pg_schema)
    database = Database(PG_URL, schema=pg_schema)
    yield database
    database.close()


@pytest.fixture
def store(db: Database, pg_schema: str) -> Iterator[RuleStore]:
    with RuleStore(PG_URL, schema=pg_schema) as rules:
        yield rules
