"""Rule sets: validation on save, immutable versions, the decision order, shadow rules, and the
frame built from a scored batch."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from fraudstream.features import PRE_AUTH_FEATURES
from fraudstream.rules import Rule, RuleError, RuleSet, Schema, batch_frame
from fraudstream.rules._compile import normalise
from fraudstream.schema import KINDS, ScoredBatch, TxBatch

PRE = Schema.for_mode("pre_auth")
ALLOW, REVIEW, BLOCK = 0, 1, 2

#: Rows: 0 nothing fires; 1 review rule; 2 block rule; 3 allow + block; 4 review + block;
#: 5 allow-list only; 6 review rule, model blocks; 7 nothing, model reviews.
FRAME = {
    "amount": [10.0, 20_000.0, 90_000.0, 90_000.0, 90_000.0, 5.0, 20_000.0, 1.0],
    "account": ["a", "b", "c", "vip", "d", "vip", "e", "f"],
    "counterparty": ["x", "x", "mule1", "mule1", "mule1", "x", "x", "x"],
}
MODEL = np.array([0, 0, 0, 1, 0, 0, 2, 1], dtype=np.int8)
LISTS = {"trusted": frozenset({"vip"}), "mules": frozenset({"mule1"})}


def _rules(**status: str) -> list[Rule]:
    def s(rule_id: str) -> str:
        return status.get(rule_id, "live")

    return [
        Rule("big", "amount > 10_000", "review", status=s("big")),
        Rule("mule", 'counterparty in list("mules")', "block", status=s("mule")),
        Rule("vip", 'account in list("trusted")', "allow", status=s("vip")),
    ]


def test_decision_order_allow_then_block_then_review_then_model() -> None:
    got = RuleSet(_rules(), PRE).decide(FRAME, MODEL, LISTS)
    assert got.decision.tolist() == [ALLOW, REVIEW, BLOCK, ALLOW, BLOCK, ALLOW, BLOCK, REVIEW]
    assert got.fired == [
        (),
        ("big",),
        ("mule", "big"),
        ("vip", "mule", "big"),
        ("mule", "big"),
        ("vip",),
        ("big",),
        (),
    ]
    assert got.shadow_fired == [()] * 8
    assert got.decision.dtype == np.int8


def test_a_review_rule_never_lowers_the_models_block() -> None:
    got = RuleSet(_rules(), PRE).decide(FRAME, MODEL, LISTS)
    assert MODEL[6] == BLOCK and got.fired[6] == ("big",) and got.decision[6] == BLOCK


def test_priority_orders_fired_ids_within_an_action() -> None:
    rules = [
        Rule("z_first", "amount > 1", "review", priority=1, status="live"),
        Rule("a_second", "amount > 1", "review", priority=5, status="live"),
        Rule("b_third", "amount > 1", "review", priority=5, status="live"),
    ]
    fired = RuleSet(rules, PRE).decide({"amount": [2.0]}, [0]).fired
    assert fired == [("z_first", "a_second", "b_third")]


def test_shadow_rules_are_reported_and_never_act() -> None:
    rs = RuleSet(_rules(mule="shadow", vip="shadow"), PRE)
    got = rs.decide(FRAME, MODEL, LISTS)
    assert got.decision.tolist() == [ALLOW, REVIEW, REVIEW, REVIEW, REVIEW, ALLOW, BLOCK, REVIEW]
    assert got.shadow_fired == [(), (), ("mule",), ("vip", "mule"), ("mule",), ("vip",), (), ()]
    assert all("mule" not in f and "vip" not in f for f in got.fired)
    all_shadow = RuleSet(_rules(big="shadow", mule="shadow", vip="shadow"), PRE)
    assert all_shadow.decide(FRAME, MODEL, LISTS).decision.tolist() == MODEL.tolist()


def test_draft_and_paused_rules_are_not_evaluated() -> None:
    rs = RuleSet(_rules(big="draft", mule="paused", vip="draft"), PRE)
    got = rs.decide(FRAME, MODEL, LISTS)
    assert got.decision.tolist() == MODEL.tolist()
    assert got.fired == [()] * 8 and got.shadow_fired == [()] * 8
    assert rs.columns == frozenset() and rs.list_names == frozenset()
    assert RuleSet(_rules(big="shadow"), PRE).columns == {"amount", "account", "counterparty"}


def test_a_malformed_rule_is_refused_and_the_set_in_force_stays() -> None:
    v1 = RuleSet(_rules(), PRE, lists=LISTS.keys())
    with pytest.raises(RuleError) as info:
        v1.with_rule(Rule("bad", "amount > ", "block", status="live"))
    assert str(info.value).startswith("rule 'bad': expected a value")
    with pytest.raises(RuleError, match="rule 'typo': unknown list 'mulez'"):
        v1.with_rule(Rule("typo", 'nameDest in list("mulez")', "block"), lists=LISTS.keys())
    assert v1.version == 1 and [r.id for r in v1.rules] == ["vip", "mule", "big"]
    assert v1.decide(FRAME, MODEL, LISTS).decision.tolist()[2] == BLOCK


def test_versions_are_new_objects() -> None:
    v1 = RuleSet(_rules(), PRE)
    v2 = v1.with_status("mule", "paused")
    v3 = v2.with_rule(Rule("big", "amount > 50_000", "block", status="live"))
    v4 = v3.without("vip")
    assert [v.version for v in (v1, v2, v3, v4)] == [1, 2, 3, 4]
    assert v1.get("mule").status == "live" and v2.get("mule").status == "paused"
    assert v3.get("big").action == "block" and v1.get("big").action == "review"
    assert v4.get("vip") is None and len(v4) == 2 and len(v1) == 3
    with pytest.raises(RuleError, match="no rule 'nope' in rule set version 4"):
        v4.without("nope")


def test_rule_fields_are_checked() -> None:
    with pytest.raises(RuleError, match="bad rule id ''"):
        Rule("", "true", "block")
    with pytest.raises(RuleError, match="unknown action 'deny'"):
        Rule("r", "true", "deny")
    with pytest.raises(RuleError, match="unknown status 'on'"):
        Rule("r", "true", "block", status="on")
    with pytest.raises(RuleError, match="rule id 'r' is used twice"):
        RuleSet([Rule("r", "true", "block"), Rule("r", "false", "allow")], PRE)


def test_a_missing_column_names_it() -> None:
    with pytest.raises(RuleError, match="the batch has no column 'account'"):
        RuleSet(_rules(), PRE).decide({"amount": [1.0], "counterparty": ["x"]}, [0], LISTS)


def _scored() -> ScoredBatch:
    n = 3
    tx = TxBatch(
        tx_id=["t0", "t1", "t2"],
        event_time_ms=np.array([0, 5 * 3_600_000, 23 * 3_600_000 + 1], dtype=np.int64),
        account=["a", "b", "é"],
        counterparty=["m", "m", "n"],
        kind=np.array([KINDS.index("TRANSFER"), 0, KINDS.index("CASH_OUT")], dtype=np.int8),
        amount=np.array([20_000.0, 3.0, 50.0]),
        old_balance_orig=np.array([20_000.0, math.nan, 1.0]),
        new_balance_orig=np.array([0.0, math.nan, 0.0]),
        old_balance_dest=np.zeros(n),
        new_balance_dest=np.zeros(n),
        label=np.full(n, -1, dtype=np.int8),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )
    features = np.zeros((n, len(PRE_AUTH_FEATURES)), dtype=np.float32)
    features[:, PRE_AUTH_FEATURES.index("drains_balance")] = [1, 0, 0]
    features[:, PRE_AUTH_FEATURES.index("seconds_since_account_received")] = [60, 9e5, 10]
    return ScoredBatch(
        tx=tx,
        feature_names=PRE_AUTH_FEATURES,
        features=features,
        score=np.array([0.2, 0.9, 0.1]),
        decision=np.array([0, 2, 0], dtype=np.int8),
        reasons=[[], [], []],
        model_version="v1",
        partition=np.zeros(n, dtype=np.int32),
        offset=np.arange(n, dtype=np.int64),
        processed_at_ms=0,
    )


def test_batch_frame_from_a_scored_batch() -> None:
    scored = _scored()
    rules = RuleSet(
        [
            Rule(
                "drain",
                'type == "TRANSFER" and drains_balance and seconds_since_account_received < 3_600',
                "block",
                status="live",
            ),
            Rule(
                "night",
                'hour == 23 and nameOrig == "é" and not (oldbalanceOrg > 5)',
                "review",
                status="shadow",
            ),
            Rule("score", "score > 0.5", "review", status="live"),
        ],
        PRE,
    )
    frame = batch_frame(scored, rules.columns)
    assert set(frame.columns) == rules.columns
    # already as rules read them, so the detector's decide(..., normalised=True) skips the check
    assert normalise(frame, rules._compiled._types) is frame
    got = rules.decide(frame, scored.decision)
    trusted = rules.decide(frame, scored.decision, normalised=True)
    assert trusted.decision.tolist() == got.decision.tolist()
    assert (trusted.fired, trusted.shadow_fired) == (got.fired, got.shadow_fired)
    assert got.decision.tolist() == [BLOCK, BLOCK, ALLOW]
    assert got.fired == [("drain",), ("score",), ()]
    assert got.shadow_fired == [(), (), ("night",)]
    everything = batch_frame(scored)
    assert {"type", "account", "score", "hour", *PRE_AUTH_FEATURES} <= set(everything.columns)
    assert everything.get_column("type").to_list() == ["TRANSFER", "PAYMENT", "CASH_OUT"]
    with pytest.raises(RuleError, match="a scored batch has no column 'newbalanceX'"):
        batch_frame(scored, ["newbalanceX"])


def test_rules_only_ever_change_rows_they_fire_on() -> None:
    rng = np.random.default_rng(7)
    amount = rng.uniform(0, 30_000, 2_000)
    model = rng.integers(0, 3, 2_000).astype(np.int8)
    rs = RuleSet([Rule("big", "amount > 25_000", "review", status="live")], PRE)
    got = rs.decide({"amount": amount}, model)
    hit = amount > 25_000
    assert (got.decision[~hit] == model[~hit]).all()
    assert (got.decision[hit] == np.maximum(model[hit], REVIEW)).all()
    assert replace(rs.get("big"), status="paused").status == "paused"
