"""A plain per-row evaluator of rule trees, for tests only: it states the semantics of
:mod:`fraudstream.rules._compile` in the simplest Python, one row at a time.

``None`` is a missing value (null or NaN) or an unknown condition; the logic is Kleene's.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

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

__all__ = ["evaluate_row", "fires"]

Value = float | str | bool | None


def fires(
    expr: Expr, row: Mapping[str, Any], lists: Mapping[str, Collection[str]] | None = None
) -> bool:
    """Whether a rule with condition ``expr`` fires on ``row`` (column name → value)."""
    return evaluate_row(expr, row, lists or {}) is True


def evaluate_row(expr: Expr, row: Mapping[str, Any], lists: Mapping[str, Collection[str]]) -> Value:
    """The value of ``expr`` on one row (``None``: missing or unknown)."""
    match expr:
        case Num(value=v) | Str(value=v) | Bool(value=v):
            return v
        case FieldRef():
            return _field(expr, row[expr.column])
        case Neg(operand=o):
            x = evaluate_row(o, row, lists)
            return None if x is None else -_num(x)
        case Arith(op=op, left=a, right=b):
            return _arith(op, evaluate_row(a, row, lists), evaluate_row(b, row, lists))
        case Compare(op=op, left=a, right=b):
            return _compare(op, evaluate_row(a, row, lists), evaluate_row(b, row, lists))
        case InSet(operand=o, values=members, negated=neg):
            x = evaluate_row(o, row, lists)
            return _negate(None if x is None else any(x == v for v in members), neg)
        case InList(operand=o, name=name, negated=neg):
            x = evaluate_row(o, row, lists)
            return _negate(None if x is None else x in lists.get(name, ()), neg)
        case Not(operand=o):
            return _negate(evaluate_row(o, row, lists), True)
        case And(operands=ops):
            got = [evaluate_row(o, row, lists) for o in ops]
            return False if False in got else None if None in got else True
        case Or(operands=ops):
            got = [evaluate_row(o, row, lists) for o in ops]
            return True if True in got else None if None in got else False
    raise TypeError(f"not a rule expression node: {expr!r}")  # pragma: no cover


def _field(f: FieldRef, raw: Any) -> Value:
    if raw is None:
        return None
    if f.type == "string":
        return str(raw)
    x = float(raw)
    if math.isnan(x):
        return None
    return x != 0.0 if f.type == "bool" else x


def _num(x: Value) -> float:
    assert isinstance(x, float | int) and not isinstance(x, bool)
    return float(x)


def _arith(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    x, y = _num(a), _num(b)
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    else:
        if y == 0.0:
            return None
        r = x / y
    return None if math.isnan(r) else r


def _compare(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    x, y = _num(a), _num(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _negate(x: Value, negate: bool) -> Value:
    if x is None or not negate:
        return x
    return not x
