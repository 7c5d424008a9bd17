"""Vectorised rule evaluation (polars) against the plain per-row reference evaluator.

Hypothesis generates typed trees over numbers, strings and flags, writes them as text, parses
them back (the round trip must give the same tree) and evaluates them on generated batches with
nulls, NaN, infinities, unicode strings and empty or absent lists.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.rules import Compiled, Field, Rule, RuleError, RuleSet, Schema, parse, unparse
from fraudstream.rules._ast import (
    And,
    Arith,
    Bool,
    Compare,
    Expr,
    FieldRef,
    InList,
    InSet,
    Neg,
    Not,
    Num,
    Or,
    Str,
)
from fraudstream.rules._compile import column_types, normalise, to_polars
from fraudstream.rules._reference import evaluate_row, fires

SCHEMA = Schema(
    "test",
    [
        Field("n1", "n1", "number", "feature", ""),
        Field("n2", "n2", "number", "transaction", ""),
        Field("s1", "s1", "string", "transaction", ""),
        Field("s2", "s2", "string", "transaction", ""),
        Field("alias1", "s1", "string", "transaction", ""),
        Field("b1", "b1", "bool", "feature", ""),
    ],
)
NUMBER_FIELDS = ("n1", "n2")
STRING_FIELDS = ("s1", "s2", "alias1")
LIST_NAMES = ("L1", "L2", "absent")
POOL = ("A", "B", "", "é", "日本", "nul\x00", 'q"\\')

# -- values and batches ----------------------------------------------------------------------
numbers = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 10_000.0, math.inf, -math.inf]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-5, 5).map(float),
)
strings = st.one_of(st.none(), st.sampled_from(POOL), st.text(max_size=5))
flags = st.one_of(st.none(), st.just(math.nan), st.sampled_from([0.0, 1.0, -0.0, 3.0]))


@st.composite
def batches(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(0, 12))
    cols: dict[str, list[Any]] = {
        "n1": draw(st.lists(numbers, min_size=n, max_size=n)),
        "n2": draw(st.lists(numbers, min_size=n, max_size=n)),
        "s1": draw(st.lists(strings, min_size=n, max_size=n)),
        "s2": draw(st.lists(strings, min_size=n, max_size=n)),
        "b1": draw(st.lists(flags, min_size=n, max_size=n)),
    }
    schema = {"n1": pl.Float64, "n2": pl.Float64, "s1": pl.String, "s2": pl.String}
    return pl.DataFrame(cols, schema={**schema, "b1": pl.Float64})


lists_strategy = st.fixed_dictionaries(
    {
        "L1": st.frozensets(st.one_of(st.sampled_from(POOL), st.text(max_size=3)), max_size=4),
        "L2": st.just(frozenset()),
    }
)

# -- typed trees -----------------------------------------------------------------------------
literal_numbers = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 10_000.0, 1e300, -2.5]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
number_field = st.sampled_from(NUMBER_FIELDS).map(lambda n: FieldRef(n, n, "number"))
string_field = st.sampled_from(STRING_FIELDS).map(
    lambda n: FieldRef(n, "s1" if n == "alias1" else n, "string")
)


def number_expr(depth: int) -> st.SearchStrategy[Expr]:
    leaf = st.one_of(st.builds(Num, literal_numbers), number_field)
    if depth == 0:
        return leaf
    sub = number_expr(depth - 1)
    return st.one_of(
        leaf,
        st.builds(Neg, sub),
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), sub, sub),
    )


def string_expr() -> st.SearchStrategy[Expr]:
    return st.one_of(st.builds(Str, st.one_of(st.sampled_from(POOL), st.text())), string_field)


def _in_set(operand: st.SearchStrategy[Expr], values: st.SearchStrategy[Any]) -> Any:
    return st.builds(
        InSet, operand, st.lists(values, min_size=1, max_size=4).map(tuple), st.booleans()
    )


def bool_leaf() -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Bool, st.booleans()),
        st.just(FieldRef("b1", "b1", "bool")),
        st.builds(
            Compare,
            st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
            number_expr(2),
            number_expr(2),
        ),
        st.builds(Compare, st.sampled_from(["==", "!="]), string_expr(), string_expr()),
        _in_set(number_expr(1), literal_numbers),
        _in_set(string_expr(), st.one_of(st.sampled_from(POOL), st.text(max_size=3))),
        st.builds(InList, string_expr(), st.sampled_from(LIST_NAMES), st.booleans()),
    )


def bool_expr(depth: int) -> st.SearchStrategy[Expr]:
    if depth == 0:
        return bool_leaf()
    sub = bool_expr(depth - 1)
    ops = st.lists(sub, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        bool_leaf(),
        st.builds(Not, sub),
        st.builds(And, ops),
        st.builds(Or, ops),
        st.builds(Compare, st.sampled_from(["==", "!="]), sub, sub),
    )


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return list(frame.rows(named=True))


@PROPERTY
@given(expr=bool_expr(3), frame=batches(), lists=lists_strategy)
def test_vectorised_equals_reference(
    expr: Expr, frame: pl.DataFrame, lists: dict[str, frozenset[str]]
) -> None:
    parsed = parse(unparse(expr), SCHEMA)
    assert parsed == expr  # the text round trip keeps the tree
    got = Compiled({"r": parsed}).evaluate(frame, lists, rows=frame.height)["r"]
    want = [fires(parsed, row, lists) for row in _rows(frame)]
    assert got.dtype == np.bool_ and len(got) == frame.height
    assert got.tolist() == want


def _decided_by_reference(
    rules: RuleSet, frame: pl.DataFrame, model: list[int], lists: dict[str, frozenset[str]]
) -> tuple[list[int], list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The documented decision order, row by row, from the reference evaluator."""
    decisions, fired, shadow = [], [], []
    for row, decision in zip(_rows(frame), model, strict=True):
        hit = [
            r
            for r in rules.rules
            if r.status in ("live", "shadow") and fires(parse(r.expression, SCHEMA), row, lists)
        ]
        live = [r for r in hit if r.status == "live"]
        actions = {r.action for r in live}
        if "allow" in actions:
            decision = 0
        elif "block" in actions:
            decision = 2
        elif "review" in actions:
            decision = max(decision, 1)
        decisions.append(decision)
        fired.append(tuple(r.id for r in live))
        shadow.append(tuple(r.id for r in hit if r.status == "shadow"))
    return decisions, fired, shadow


rule_sets = st.lists(
    st.tuples(
        bool_expr(2),
        st.sampled_from(["allow", "review", "block"]),
        st.sampled_from(["live", "live", "shadow", "draft"]),
    ),
    min_size=1,
    max_size=6,
)


@PROPERTY
@given(specs=rule_sets, frame=batches(), lists=lists_strategy, data=st.data())
def test_a_rule_sets_decisions_equal_the_reference(
    specs: list[tuple[Expr, str, str]],
    frame: pl.DataFrame,
    lists: dict[str, frozenset[str]],
    data: st.DataObject,
) -> None:
    """:meth:`RuleSet.decide` (hits packed as bits, fired ids per distinct combination) gives
    the documented order's decisions and ids, row by row, with constant and list rules mixed."""
    rules = RuleSet(
        [
            Rule(f"r{i}", unparse(e), action, status=status)  # type: ignore[arg-type]
            for i, (e, action, status) in enumerate(specs)
        ],
        SCHEMA,
    )
    model = data.draw(st.lists(st.integers(0, 2), min_size=frame.height, max_size=frame.height))
    got = rules.decide(frame, np.array(model, dtype=np.int8), lists)
    want = _decided_by_reference(rules, frame, model, lists)
    assert (got.decision.tolist(), got.fired, got.shadow_fired) == want


def test_more_rules_than_a_word_holds() -> None:
    """130 live and 70 shadow rules: their hits span three and two 63-bit words."""
    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"n1": rng.integers(0, 400, 300).astype(float)})
    specs = [
        Rule(f"r{i:03d}", f"n1 >= {i} and n1 < {i + 3 * (i % 4)}", "review", status="live")
        for i in range(130)
    ] + [Rule(f"s{i:03d}", f"n1 == {2 * i}", "block", status="shadow") for i in range(70)]
    rules = RuleSet(specs, SCHEMA)
    model = [0] * frame.height
    got = rules.decide(frame, np.zeros(frame.height, dtype=np.int8), {})
    want = _decided_by_reference(rules, frame, model, {})
    assert (got.decision.tolist(), got.fired, got.shadow_fired) == want
    assert max(map(len, got.fired)) > 1 and any(got.shadow_fired)


@PROPERTY
@given(expr=number_expr(3), frame=batches())
def test_number_values_equal_reference(expr: Expr, frame: pl.DataFrame) -> None:
    columns = normalise(frame, column_types([expr]))
    got = columns.select(to_polars(expr, {}).alias("v")).get_column("v").to_list()
    if len(got) == 1 and frame.height != 1:  # a literal-only expression is one value
        got = got * frame.height
    want = [evaluate_row(expr, row, {}) for row in _rows(frame)]
    # polars may divide by a literal as a multiplication by its reciprocal: one ulp apart
    assert [
        None if g is None else pytest.approx(float(g), rel=1e-12, nan_ok=True) for g in got
    ] == want


# -- the documented semantics, case by case ---------------------------------------------------
def _fires(text: str, **columns: list[Any]) -> list[bool]:
    frame = pl.DataFrame(
        columns, schema={c: pl.String if c.startswith("s") else pl.Float64 for c in columns}
    )
    return Compiled({"r": parse(text, SCHEMA)}).evaluate(frame, {"L1": {"A"}})["r"].tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n1 > 1", [True, False, False, False]),
        ("not (n1 > 1)", [False, True, False, False]),  # unknown stays unknown
        ("n1 <= 1", [False, True, False, False]),
        ("n1 > 1 or true", [True, True, True, True]),
        ("n1 > 1 and false", [False, False, False, False]),
        ("n1 / 0 < 1 or n1 / 0 >= 1", [False, False, False, False]),  # x / 0 is missing
        ("n1 in (2, 5)", [True, False, False, False]),
        ("n1 not in (2, 5)", [False, True, False, False]),
    ],
)
def test_missing_values_are_unknown(text: str, expected: list[bool]) -> None:
    assert _fires(text, n1=[2.0, 0.0, None, math.nan]) == expected


def test_strings_lists_and_flags() -> None:
    assert _fires('s1 == "é"', s1=["é", "e", None]) == [True, False, False]
    assert _fires('s1 in list("L1")', s1=["A", "B", None]) == [True, False, False]
    assert _fires('s1 not in list("L1")', s1=["A", "B", None]) == [False, True, False]
    assert _fires('s1 in list("L2")', s1=["A", "B", None]) == [False, False, False]
    assert _fires('s1 not in list("L2")', s1=["A", "B", None]) == [True, True, False]
    assert _fires("b1", b1=[1.0, 0.0, None, math.nan]) == [True, False, False, False]
    assert _fires("not b1", b1=[1.0, 0.0, None, math.nan]) == [False, True, False, False]


def test_inf_compares_and_inf_minus_inf_is_missing() -> None:
    assert _fires("n1 > 1e300", n1=[math.inf, -math.inf]) == [True, False]
    assert _fires("n1 - n1 == 0 or n1 - n1 != 0", n1=[math.inf, 1.0]) == [False, True]


def test_a_mapping_of_arrays_works_like_a_frame() -> None:
    compiled = Compiled({"r": parse('s1 == "A" and n1 > 0', SCHEMA)})
    hits = compiled.evaluate({"s1": np.array(["A", "A", "B"]), "n1": [1.0, -1.0, 1.0]})
    assert hits["r"].tolist() == [True, False, False]


def test_a_missing_column_is_a_rule_error() -> None:
    compiled = Compiled({"r": parse("n1 > 0 and n2 > 0", SCHEMA)})
    with pytest.raises(RuleError, match="the batch has no column 'n2'"):
        compiled.evaluate(pl.DataFrame({"n1": [1.0]}))


def test_literal_only_rules_broadcast_to_the_batch() -> None:
    compiled = Compiled({"yes": parse("1 < 2", SCHEMA), "no": parse("false", SCHEMA)})
    hits = compiled.evaluate(pl.DataFrame(), rows=3)
    assert hits["yes"].tolist() == [True] * 3 and hits["no"].tolist() == [False] * 3


def test_a_frozen_list_is_converted_once_and_a_new_one_is_read() -> None:
    compiled = Compiled({"r": parse('s1 in list("L1")', SCHEMA)})
    frame = pl.DataFrame({"s1": ["A", "B"]})
    first = frozenset({"A"})
    assert compiled.evaluate(frame, {"L1": first})["r"].tolist() == [True, False]
    assert compiled.evaluate(frame, {"L1": first})["r"].tolist() == [True, False]
    assert compiled.evaluate(frame, {"L1": frozenset({"B"})})["r"].tolist() == [False, True]
    assert compiled.evaluate(frame, {})["r"].tolist() == [False, False]  # absent: empty
    mutable = {"A"}  # neither frozen nor a tuple: read again on every call
    assert compiled.evaluate(frame, {"L1": mutable})["r"].tolist() == [True, False]
    mutable.add("B")
    assert compiled.evaluate(frame, {"L1": mutable})["r"].tolist() == [True, True]
