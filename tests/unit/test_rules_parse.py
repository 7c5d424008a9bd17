"""The rule language's parser: what it accepts, the tree it builds, and every kind of refusal,
with the message text and the position it points at."""

from __future__ import annotations

import pytest

from fraudstream.features import CARD_FEATURES, POST_TX_FEATURES, PRE_AUTH_FEATURES
from fraudstream.rules import MODES, RuleError, Schema, parse, unparse
from fraudstream.rules._ast import And, Arith, Compare, FieldRef, InList, InSet, Neg, Not, Num, Or

PRE = Schema.for_mode("pre_auth")
LISTS = ("mules", "trusted")


def _error(text: str, schema: Schema = PRE) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse(text, schema, LISTS)
    return info.value


def test_the_issues_examples_parse() -> None:
    big = parse(
        'type == "TRANSFER" and amount > 10_000 and seconds_since_last_by_account < 3_600', PRE
    )
    assert isinstance(big, And) and len(big.operands) == 3
    assert big.operands[1] == Compare(">", FieldRef("amount", "amount", "number"), Num(10_000.0))
    assert parse("score > 0.5 and amount > 5_000", PRE) == And(
        (
            Compare(">", FieldRef("score", "score", "number"), Num(0.5)),
            Compare(">", FieldRef("amount", "amount", "number"), Num(5000.0)),
        )
    )
    mules = parse('nameDest in list("mules")', PRE, LISTS)
    assert mules == InList(FieldRef("nameDest", "counterparty", "string"), "mules")


def test_precedence_and_associativity() -> None:
    e = parse("not amount > 1 + 2 * 3 or hour in (1, 2) and drains_balance", PRE)
    amount = FieldRef("amount", "amount", "number")
    assert e == Or(
        (
            Not(Compare(">", amount, Arith("+", Num(1.0), Arith("*", Num(2.0), Num(3.0))))),
            And(
                (
                    InSet(FieldRef("hour", "hour", "number"), (1.0, 2.0)),
                    FieldRef("drains_balance", "drains_balance", "bool"),
                )
            ),
        )
    )
    assert parse("amount - 1 - 2 > 0", PRE).left == Arith(
        "-", Arith("-", amount, Num(1.0)), Num(2.0)
    )


def test_literals_negatives_sets_and_escapes() -> None:
    assert parse("amount > -5", PRE).right == Num(-5.0)
    assert parse("-amount > 1.5e3", PRE).left == Neg(FieldRef("amount", "amount", "number"))
    assert parse("amount not in (-1, 2.5,)", PRE) == InSet(
        FieldRef("amount", "amount", "number"), (-1.0, 2.5), negated=True
    )
    s = parse('nameDest == "a \\"b\\" \\\\ é"', PRE)
    assert s.right.value == 'a "b" \\ é'
    assert parse("drains_balance == true", PRE).right.value is True


@pytest.mark.parametrize(
    "text",
    [
        'type == "TRANSFER" and amount > 10_000',
        'nameDest not in list("mules") or (score >= 0.9 and not drains_balance)',
        '(amount / (oldbalanceOrg + 1)) * 2 > 0.5 and type in ("CASH_OUT", "TRANSFER")',
    ],
)
def test_unparse_parses_back_to_the_same_tree(text: str) -> None:
    tree = parse(text, PRE, LISTS)
    assert parse(unparse(tree), PRE, LISTS) == tree


def test_fields_per_mode() -> None:
    post = Schema.for_mode("post_tx")
    card = Schema.for_mode("card")
    assert set(PRE_AUTH_FEATURES) <= set(PRE.fields) and set(POST_TX_FEATURES) <= set(post.fields)
    assert set(CARD_FEATURES) <= set(card.fields)
    assert post.get("newbalanceOrig") is not None and PRE.get("newbalanceOrig") is None
    assert card.get("oldbalanceOrg") is None and card.get("terminal").column == "counterparty"
    assert PRE.get("nameOrig").column == PRE.get("account").column == "account"
    assert PRE.get("type").type == "string" and PRE.get("score").type == "number"
    assert PRE.get("drains_balance").type == "bool" and PRE.get("kind_transfer").type == "bool"
    assert PRE.get("amount").source == "transaction"
    assert set(MODES) == {"pre_auth", "post_tx", "card"}
    with pytest.raises(RuleError, match="unknown mode 'paysim'; expected one of pre_auth"):
        Schema.for_mode("paysim")


# -- one test per kind of refusal -----------------------------------------------------------
def test_unknown_field_lists_the_closest_names_and_points_at_it() -> None:
    e = _error('type == "TRANSFER" and amout > 10_000')
    assert (
        e.reason
        == "unknown field 'amout' in mode 'pre_auth' (did you mean amount, log_amount, account?)"
    )
    assert (e.line, e.column) == (1, 24)
    assert str(e).splitlines() == [
        e.reason + " at column 24",
        '  type == "TRANSFER" and amout > 10_000',
        "                         ^",
    ]


def test_a_field_of_another_mode_says_why() -> None:
    assert _error("newbalanceOrig > 0").reason == (
        "unknown field 'newbalanceOrig' in mode 'pre_auth': balances after the transaction are "
        "not known before authorisation (post_tx)"
    )
    card = Schema.for_mode("card")
    assert _error("oldbalanceOrg > 0", card).reason.endswith("the card format has no balances")


def test_string_compared_with_a_number() -> None:
    e = _error('amount > "5000"')
    assert e.reason == 'cannot compare `amount` (number) with `"5000"` (string)'
    assert e.column == 8
    assert _error('nameDest in (1, "a")').reason == (
        "cannot compare `nameDest` (string) with `1` (number)"
    )


def test_flag_compared_with_a_number_suggests_the_flag_itself() -> None:
    assert _error("drains_balance == 1").reason == (
        "cannot compare `drains_balance` (bool) with `1` (number): `drains_balance` is a flag, "
        "write `drains_balance` or `not drains_balance`"
    )


def test_ordering_strings_is_refused() -> None:
    e = _error('nameDest < "C5"')
    assert (e.reason, e.column) == ("strings are compared with == or != only, not <", 10)


def test_unknown_value_of_type() -> None:
    e = _error('type == "TRANSFR"')
    assert e.reason == (
        "type is never 'TRANSFR'; its values are PAYMENT, TRANSFER, CASH_OUT, CASH_IN, DEBIT"
    )
    assert e.column == 9
    assert _error('type in ("CASH_OUT", "wire")').column == 22


def test_unknown_list() -> None:
    e = _error('nameDest in list("mule")')
    assert (e.reason, e.column) == ("unknown list 'mule' (lists: mules, trusted)", 18)
    assert parse('nameDest in list("anything")', PRE) is not None  # lists=None: not checked


def test_list_of_numbers_is_refused() -> None:
    e = _error('amount in list("mules")')
    assert (e.reason, e.column) == ("lists hold strings, but `amount` is a number", 8)


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("amount > 10 and", "expected a value, a field or `(`, found the end of the rule", 16),
        ("(amount > 1", "expected `)`, found the end of the rule", 12),
        ("amount > 1)", "expected `and`, `or` or the end, found `)`", 11),
        ("amount > 1 < 3", "comparisons do not chain: join them with `and`", 12),
        ("amount = 5", "unexpected character '=': use == to compare", 8),
        ("amount > 1 && hour > 2", "unexpected character '&': use and", 12),
        ("nameDest == 'x'", 'unexpected character "\'": strings use double quotes: "..."', 13),
        ("amount > 1 AND hour > 2", "unknown word `AND` (keywords are lowercase)", 12),
        ("AMOUNT > 1", "unknown field 'AMOUNT' in mode 'pre_auth' (did you mean amount?)", 1),
        ("Not drains_balance", "unknown field 'Not' (keywords are lowercase: `not`)", 1),
        (
            "10__000 < amount",
            "malformed number '10__000' (underscores go between digits: 10_000)",
            1,
        ),
        ("amount > 1e999", "number '1e999' is too large", 10),
        ('nameDest == "abc', 'unterminated string: it needs a closing "', 13),
        ('nameDest == "a\\n"', 'unknown escape in a string: only \\" and \\\\ are allowed', 15),
        ("amount in list(mules)", "expected a list name in double quotes, found `mules`", 16),
        ("amount in [1, 2]", "unexpected character '['", 11),
        ("amount in ()", "expected a number or a string, found `)`", 12),
        ("", "expected a value, a field or `(`, found the end of the rule", 1),
    ],
)
def test_malformed_expressions(text: str, reason: str, column: int) -> None:
    e = _error(text)
    assert (e.reason, e.column) == (reason, column)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("amount", "a rule must be a condition, not a number (compare it, e.g. `... > 0`)"),
        ("amount and hour > 1", "`and` needs conditions, but `amount` is a number"),
        ("hour > 1 or nameDest", "`or` needs conditions, but `nameDest` is a string"),
        ("not score", "`not` needs conditions, but `score` is a number"),
        ("nameDest + 1 > 2", "`+` needs numbers, but `nameDest` is a string"),
        ("-drains_balance", "`-` needs a number, not a bool"),
        (
            "drains_balance in (1, 2)",
            "`in` needs a number or a string, but `drains_balance` is a bool",
        ),
    ],
)
def test_type_errors(text: str, reason: str) -> None:
    assert _error(text).reason == reason


def test_multiline_rules_point_at_line_and_column() -> None:
    e = _error('type == "TRANSFER"\n  and amout > 1')
    assert (e.line, e.column) == (2, 7)
    assert str(e).splitlines()[1:] == ["    and amout > 1", "        ^"]
    assert " at line 2, column 7" in str(e)


def test_limits_on_size_and_nesting() -> None:
    assert "at most 10000" in _error("amount > 1 or " * 800 + "true").reason
    assert _error("(" * 60 + "true" + ")" * 60).reason == "the rule nests deeper than 50 levels"
    assert "too deeply nested" in _error(" + ".join(["amount"] * 300) + " > 1").reason


def test_a_rule_error_is_a_value_error_of_the_project() -> None:
    from fraudstream.errors import FraudstreamError

    e = _error("x > 1")
    assert isinstance(e, ValueError) and isinstance(e, FraudstreamError)
    assert "rule 'r1': unknown field 'x'" in str(e.for_rule("r1"))


def test_the_examples_in_docs_rules_md_parse() -> None:
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "rules.md"
    block = doc.read_text(encoding="utf-8").split("## The expression language")[1].split("```")[1]
    examples = block.strip().splitlines()
    assert len(examples) >= 5
    for text in examples:
        parse(text, PRE)
