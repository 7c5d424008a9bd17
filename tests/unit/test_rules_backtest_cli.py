"""The backtest command's arguments: times and which positional is RULES or DATA."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from fraudstream.cli._backtest import parse_time
from fraudstream.cli._rules import _backtest_paths

DAY_MS = 86_400_000


def test_times_are_ms_dates_or_date_times() -> None:
    assert parse_time("1234", "--from") == 1234
    assert parse_time("1970-01-02", "--from") == DAY_MS
    assert parse_time("1970-01-02", "--to", end=True) == 2 * DAY_MS  # the end of that day
    assert parse_time("1970-01-01T01:00", "--from") == 3_600_000  # UTC without a zone
    assert parse_time("1970-01-01T02:00+01:00", "--from") == 3_600_000
    with pytest.raises(typer.Exit):
        parse_time("yesterday", "--from")


def test_rules_and_data_from_the_positionals() -> None:
    rules, data = Path("p.yaml"), Path("h.parquet")
    assert _backtest_paths([data], None, None, False) == (None, data)
    assert _backtest_paths([rules, data], None, None, False) == (rules, data)
    assert _backtest_paths([data], None, None, True) == (None, data)
    assert _backtest_paths([], "0", "9", False) == (None, None)
    assert _backtest_paths([rules], "0", "9", False) == (rules, None)
    for paths, start, end, starter in (
        ([], None, None, False),  # no DATA
        ([rules, data], "0", "9", False),  # DATA with a range
        ([rules], "0", "9", True),  # RULES and --starter
        ([rules, data], None, None, True),
        ([], "0", None, False),  # half a range
    ):
        with pytest.raises(typer.Exit):
            _backtest_paths(paths, start, end, starter)
