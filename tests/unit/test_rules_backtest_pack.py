"""The starter packs shipped with the package, and what a backtest needs to read."""

from __future__ import annotations

import polars as pl
import pytest

from fraudstream.rules import Rule, RuleError, RuleSet, Schema, backtest
from fraudstream.rules._backtest import rule_columns, rule_lists
from fraudstream.rules._pack import STARTER_PACKS, read_pack, starter_pack, write_pack


@pytest.mark.parametrize("mode", sorted(STARTER_PACKS))
def test_starter_packs_validate_in_their_modes(mode: str) -> None:
    pack = starter_pack(mode)
    rules = RuleSet(pack.rules, Schema.for_mode(mode))  # raises if a rule does not fit the mode
    assert 8 <= len(rules) <= 12
    assert all(r.description and r.status == "shadow" for r in pack.rules)
    assert {r.action for r in pack.rules} == {"allow", "review", "block"}
    assert pack.mode in (None, mode)
    assert read_pack(write_pack(pack.rules, mode=pack.mode)) == pack  # round trip


def test_paysim_pack_is_not_a_card_pack() -> None:
    with pytest.raises(RuleError, match="unknown field"):
        RuleSet(starter_pack("pre_auth").rules, Schema.for_mode("card"))
    with pytest.raises(RuleError, match="no starter pack for mode 'x'"):
        starter_pack("x")


def test_columns_and_lists_a_backtest_reads() -> None:
    rules = [
        Rule("a", 'nameDest in list("mules") and amount > 5', "block"),
        Rule("b", "drains_balance and hour < 6", "review"),
    ]
    reads = rule_columns(rules, Schema.for_mode("pre_auth"))
    assert reads == {"a": {"counterparty", "amount"}, "b": {"drains_balance", "hour"}}
    assert rule_lists(rules, Schema.for_mode("pre_auth")) == {"mules"}


def test_a_missing_column_names_the_rule() -> None:
    history = pl.DataFrame({"amount": [1.0], "label": [0], "decision": [0], "event_time_ms": [0]})
    rule = Rule("night", "hour < 6", "review")
    with pytest.raises(RuleError, match="rule 'night' reads 'hour', which the history"):
        backtest(history, [rule], Schema.for_mode("pre_auth"))
