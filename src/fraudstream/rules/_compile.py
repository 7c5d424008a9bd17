"""Vectorised evaluation: every rule's tree becomes one polars expression, and all of a batch's
rules are evaluated in one ``select`` over the batch's columns.

Missing values follow SQL's three-valued logic (Kleene):

- a missing value is ``null`` or ``NaN`` in a number column (NaN is read as null), ``null`` in a
  string column; arithmetic on it, and division by zero, give a missing value;
- a comparison or membership test with a missing operand is *unknown*;
- ``not unknown`` is unknown; ``unknown and false`` is false; ``unknown or true`` is true;
- a rule **fires only when its condition is true**: unknown counts as not firing.

So ``not (amount > 100)`` and ``amount <= 100`` agree: neither fires on a missing amount. A flag
feature (a bool field) is true when its value is non-zero. Lists are sets of strings given at
evaluation time; a list that is not given is empty.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

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
    Type,
    lists_of,
    walk,
)
from fraudstream.rules._errors import RuleError

__all__ = ["Columns", "Compiled", "Lists", "column_types", "normalise", "to_polars"]

#: A batch: a polars DataFrame, or column name → array (numpy array or list).
Columns = pl.DataFrame | Mapping[str, npt.ArrayLike]
#: The lists rules look values up in: name → its values (entries' expiry is the caller's).
Lists = Mapping[str, Collection[str]]
Bools = npt.NDArray[np.bool_]

_BinOp = Callable[[pl.Expr, pl.Expr], pl.Expr]
_COMPARE: Final[dict[str, _BinOp]] = {
    "==": lambda a, b: a.eq(b),
    "!=": lambda a, b: a.ne(b),
    "<": lambda a, b: a.lt(b),
    "<=": lambda a, b: a.le(b),
    ">": lambda a, b: a.gt(b),
    ">=": lambda a, b: a.ge(b),
}
_ARITH: Final[dict[str, _BinOp]] = {
    "+": lambda a, b: a.add(b),
    "-": lambda a, b: a.sub(b),
    "*": lambda a, b: a.mul(b),
    "/": lambda a, b: pl.when(b.ne(0.0)).then(a.truediv(b)),
}
_NULL_BOOL: Final = pl.lit(None, dtype=pl.Boolean)


def to_polars(expr: Expr, lists: Mapping[str, pl.Series]) -> pl.Expr:
    """The polars expression of ``expr``: Boolean (null = unknown) for a condition, Float64 for
    a number (null = missing), String for a string. ``lists``: name → a String series.

    It reads columns as :func:`normalise` leaves them (numbers Float64 without NaN)."""
    match expr:
        case Num(value=v):
            return pl.lit(v, dtype=pl.Float64)
        case Str(value=s):
            return pl.lit(s, dtype=pl.String)
        case Bool(value=b):
            return pl.lit(b, dtype=pl.Boolean)
        case FieldRef():
            return _field(expr)
        case Neg(operand=o):
            return to_polars(o, lists).neg()
        case Arith(op=op, left=a, right=b):
            return _ARITH[op](to_polars(a, lists), to_polars(b, lists)).fill_nan(None)
        case Compare(op=op, left=a, right=b):
            return _COMPARE[op](to_polars(a, lists), to_polars(b, lists))
        case InSet() | InList():
            hit = _membership(expr, lists)
            return hit.not_() if expr.negated else hit
        case Not(operand=o):
            return to_polars(o, lists).not_()
        case And(operands=ops):
            return functools.reduce(lambda a, b: a.and_(b), (to_polars(o, lists) for o in ops))
        case Or(operands=ops):
            return functools.reduce(lambda a, b: a.or_(b), (to_polars(o, lists) for o in ops))
    raise TypeError(f"not a rule expression node: {expr!r}")  # pragma: no cover


def _field(f: FieldRef) -> pl.Expr:
    col = pl.col(f.column)
    return col.ne(0.0) if f.type == "bool" else col


def column_types(exprs: Iterable[Expr]) -> dict[str, Type]:
    """Column → how ``exprs`` read it: ``string``, or ``number`` (flags are numbers non-zero)."""
    types: dict[str, Type] = {}
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, FieldRef):
                kind: Type = "string" if node.type == "string" else "number"
                if types.setdefault(node.column, kind) != kind:
                    raise RuleError(f"column {node.column!r} is read both as a string and a number")
    return types


def normalise(frame: pl.DataFrame, types: Mapping[str, Type]) -> pl.DataFrame:
    """The columns of ``types`` as rules read them: String, or Float64 with NaN as null."""
    return frame.select(
        pl.col(c).cast(pl.String) if t == "string" else pl.col(c).cast(pl.Float64).fill_nan(None)
        for c, t in types.items()
    )


def _membership(expr: InSet | InList, lists: Mapping[str, pl.Series]) -> pl.Expr:
    operand = to_polars(expr.operand, lists)
    if isinstance(expr, InList):
        values = lists.get(expr.name)
        if values is None:
            values = pl.Series(expr.name, [], dtype=pl.String)
        return operand.is_in(values.implode())
    if expr.operand.type == "string":
        return operand.is_in(pl.Series("values", expr.values, dtype=pl.String).implode())
    # Numbers: equality, not hashing (0.0 and -0.0 are equal), null in gives null out.
    tests = (operand.eq(pl.lit(v, dtype=pl.Float64)) for v in expr.values)
    return functools.reduce(lambda a, b: a.or_(b), tests)


class Compiled:
    """Named conditions (rule id → tree), evaluated together on a batch.

    The polars expressions of conditions that use no list are built once; those that do are
    rebuilt when a list changes. A list passed as a ``frozenset`` or ``tuple`` is converted once
    and reused while the same object is passed; any other collection is read on every call.
    """

    __slots__ = ("_fixed", "_list_cache", "_types", "_with_lists", "columns", "list_names")

    def __init__(self, conditions: Mapping[str, Expr]) -> None:
        self._types = column_types(conditions.values())
        self.columns: frozenset[str] = frozenset(self._types)
        self.list_names: frozenset[str] = frozenset().union(*map(lists_of, conditions.values()))
        self._fixed: dict[str, pl.Expr] = {}
        self._with_lists: dict[str, Expr] = {}
        for name, cond in conditions.items():
            if lists_of(cond):
                self._with_lists[name] = cond
            else:
                self._fixed[name] = to_polars(cond, {}).fill_null(False)
        self._list_cache: dict[str, tuple[Collection[str], pl.Series]] = {}

    def evaluate(
        self, columns: Columns, lists: Lists | None = None, *, rows: int | None = None
    ) -> dict[str, Bools]:
        """Whether each condition fires on each row: name → bool array of the batch's length.

        ``rows`` gives the batch's length when ``columns`` holds no column (no rule reads one).
        """
        frame = self._frame(columns)
        n = frame.height if frame.width else (rows if rows is not None else 0)
        exprs = dict(self._fixed)
        if self._with_lists:
            series = self._series(lists or {})
            for name, cond in self._with_lists.items():
                exprs[name] = to_polars(cond, series).fill_null(False)
        if not exprs:
            return {}
        names = list(exprs)
        try:
            frame = normalise(frame, self._types)
            out = frame.select([exprs[name].alias(f"_{i}") for i, name in enumerate(names)])
        except pl.exceptions.PolarsError as exc:
            raise RuleError(f"rules could not be evaluated on this batch: {exc}") from exc
        result: dict[str, Bools] = {}
        for i, name in enumerate(names):
            hits = out.get_column(f"_{i}").to_numpy().astype(np.bool_, copy=False)
            result[name] = np.full(n, hits[0]) if len(hits) == 1 and n != 1 else hits
        return result

    def _frame(self, columns: Columns) -> pl.DataFrame:
        have = set(columns.columns if isinstance(columns, pl.DataFrame) else columns.keys())
        missing = sorted(self.columns - have)
        if missing:
            raise RuleError(f"the batch has no column {', '.join(map(repr, missing))}")
        if isinstance(columns, pl.DataFrame):
            return columns
        try:
            return pl.DataFrame({c: columns[c] for c in sorted(self.columns)})
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise RuleError(f"the batch's columns do not make a table: {exc}") from exc

    def _series(self, lists: Lists) -> dict[str, pl.Series]:
        out: dict[str, pl.Series] = {}
        for name in self.list_names:
            values = lists.get(name)
            if values is None:
                continue
            cached = self._list_cache.get(name)
            if cached is not None and cached[0] is values:
                out[name] = cached[1]
                continue
            series = pl.Series(name, list(values), dtype=pl.String)
            if isinstance(values, frozenset | tuple):
                self._list_cache[name] = (values, series)
            out[name] = series
        return out
