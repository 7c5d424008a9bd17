"""Backtest figures on a hand-built history, worked out by hand in the comments."""

from __future__ import annotations

import polars as pl
import pytest

from fraudstream.model import Costs
from fraudstream.rules import Rule, RuleError, Schema, backtest

PRE = Schema.for_mode("pre_auth")
DAY_MS = 86_400_000

#: 8 rows over 2 days; labelled rows 0,1,2,3,5,6; frauds 0,2,6 (amounts 5000, 100, 1500).
HISTORY = pl.DataFrame(
    {
        "amount": [5000.0, 2000.0, 100.0, 50.0, 3000.0, 10.0, 1500.0, 20.0],
        "label": [1, 0, 1, 0, -1, 0, 1, None],
        "decision": [0, 0, 2, 0, 1, 0, 0, 0],
        "counterparty": ["m", "x", "m", "x", "x", "m", "x", "x"],
        "score": [0.3, 0.2, 0.95, 0.05, 0.6, 0.01, 0.02, 0.3],
        "event_time_ms": [0, DAY_MS, 2 * DAY_MS, 0, 0, 0, 0, 0],
    }
)
RULES = [
    Rule("big", "amount > 1000", "review"),  # hits 0,1,4,6
    Rule("mule", 'counterparty in list("mules")', "block", status="shadow"),  # hits 0,2,5
    Rule("low", "score < 0.1", "allow", status="live"),  # hits 3,5,6
]
LISTS = {"mules": frozenset({"m"})}
COSTS = Costs(missed_fraud_share=1.0, review_cost=5.0, blocked_good_cost=50.0)


def test_per_rule_figures() -> None:
    bt = backtest(HISTORY, RULES, PRE, lists=LISTS, costs=COSTS)
    assert (bt.rows, bt.labelled_rows, bt.frauds, bt.days) == (8, 6, 3, 2.0)
    # Model alone, labelled rows: misses frauds 0 and 6 -> 6500; no review, no block of a good.
    assert bt.model_cost == 6500.0
    rows = {r["rule_id"]: r for r in bt.table.iter_rows(named=True)}
    assert list(rows) == ["big", "mule", "low"]
    big, mule, low = rows["big"], rows["mule"], rows["low"]
    assert (big["action"], big["status"]) == ("review", "draft")
    assert (big["hits"], big["hit_share"], big["hits_per_day"]) == (4, 0.5, 2.0)
    assert (big["labelled_hits"], big["frauds_hit"]) == (3, 2)
    assert big["precision"] == pytest.approx(2 / 3) and big["recall"] == pytest.approx(2 / 3)
    assert big["fraud_amount_hit"] == 6500.0
    assert (big["model_alerts_hit"], big["model_overlap"]) == (1, 0.25)
    # Reviews rows 0, 1, 6 (labelled): 3 x 5, nothing missed.
    assert (big["cost"], big["cost_delta"]) == (15.0, 15.0 - 6500.0)
    # Blocks 0, 2, 5: misses 6 (1500), blocks good row 5 (50).
    assert (mule["hits"], mule["frauds_hit"], mule["fraud_amount_hit"]) == (3, 2, 5100.0)
    assert mule["model_overlap"] == pytest.approx(1 / 3)
    assert (mule["cost"], mule["cost_delta"]) == (1550.0, 1550.0 - 6500.0)
    # Allows 3, 5, 6: the model allowed them already.
    assert (low["hits"], low["frauds_hit"], low["precision"]) == (3, 1, pytest.approx(1 / 3))
    assert (low["model_alerts_hit"], low["model_overlap"], low["cost_delta"]) == (0, 0.0, 0.0)
    # All three acting: row 0 blocked, row 1 reviewed (5), row 6 allowed by "low" (1500 missed).
    assert bt.all_rules_cost == 1505.0


def test_overlap_between_rules() -> None:
    bt = backtest(HISTORY, RULES, PRE, lists=LISTS, costs=COSTS)
    got = {(r["rule_id"], r["other_id"]): r for r in bt.overlap.iter_rows(named=True)}
    assert set(got) == {
        (a, b) for a in ("big", "mule", "low") for b in ("big", "mule", "low") if a != b
    }
    assert all(r["both"] == 1 for r in got.values())  # big∩mule={0}, big∩low={6}, mule∩low={5}
    assert got[("big", "mule")]["share_of_rule"] == 0.25
    assert got[("mule", "big")]["share_of_rule"] == pytest.approx(1 / 3)
    assert got[("big", "mule")]["jaccard"] == pytest.approx(1 / 6)
    assert got[("mule", "low")]["jaccard"] == pytest.approx(1 / 5)


def test_empty_denominators_give_nulls() -> None:
    one_day = HISTORY.head(1).with_columns(pl.lit(0).alias("label"))
    bt = backtest(one_day, [Rule("none", "amount > 1e9", "block")], PRE, costs=COSTS)
    row = bt.table.row(0, named=True)
    assert (row["hits"], row["precision"], row["recall"], row["model_overlap"]) == (
        0,
        None,
        None,
        None,
    )
    assert row["hits_per_day"] is None and bt.days is None
    assert bt.overlap.is_empty()


def test_bad_input_is_refused() -> None:
    with pytest.raises(RuleError, match="the history has no column 'label'"):
        backtest(HISTORY.drop("label"), RULES, PRE, lists=LISTS)
    with pytest.raises(RuleError, match="rule 'x': unknown list 'mules'"):
        backtest(HISTORY, [Rule("x", 'nameDest in list("mules")', "block")], PRE, lists={})
    with pytest.raises(RuleError, match="used twice"):
        backtest(HISTORY, [RULES[0], RULES[0]], PRE, lists=LISTS)
