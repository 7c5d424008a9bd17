"""The typed syntax tree of a rule's condition.

Every node knows its :data:`Type` (``number``, ``string`` or ``bool``) and its position in the
text (a 0-based offset). The parser builds only well-typed trees; the compiler and the reference
evaluator walk them. :func:`unparse` writes a tree back as text that parses to the same tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

__all__ = [
    "And",
    "Arith",
    "ArithOp",
    "Bool",
    "Compare",
    "CompareOp",
    "Expr",
    "FieldRef",
    "InList",
    "InSet",
    "Neg",
    "Not",
    "Num",
    "Or",
    "Str",
    "Type",
    "children",
    "columns_of",
    "depth",
    "lists_of",
    "unparse",
    "walk",
]

Type = Literal["number", "string", "bool"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
ArithOp = Literal["+", "-", "*", "/"]


@dataclass(frozen=True, slots=True)
class Num:
    """A number literal (always finite; held as a float)."""

    value: float
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "number"


@dataclass(frozen=True, slots=True)
class Str:
    """A double-quoted string literal."""

    value: str
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "string"


@dataclass(frozen=True, slots=True)
class Bool:
    """``true`` or ``false``."""

    value: bool
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field as written (``name``), the frame column it reads (``column``) and its type."""

    name: str
    column: str
    type: Type
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus of a number."""

    operand: Expr
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "number"


@dataclass(frozen=True, slots=True)
class Arith:
    """``left op right`` on numbers; ``/`` by zero gives a missing value."""

    op: ArithOp
    left: Expr
    right: Expr
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "number"


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``: numbers with any operator, strings and bools with ``==`` / ``!=``."""

    op: CompareOp
    left: Expr
    right: Expr
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class InSet:
    """``operand [not] in (v1, v2, ...)``: literals of the operand's type (number or string)."""

    operand: Expr
    values: tuple[float, ...] | tuple[str, ...]
    negated: bool = False
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class InList:
    """``operand [not] in list("name")``: membership in a named list of strings."""

    operand: Expr
    name: str
    negated: bool = False
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand``."""

    operand: Expr
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class And:
    """``a and b and ...`` (two or more operands)."""

    operands: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


@dataclass(frozen=True, slots=True)
class Or:
    """``a or b or ...`` (two or more operands)."""

    operands: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)
    type: ClassVar[Type] = "bool"


Expr = Num | Str | Bool | FieldRef | Neg | Arith | Compare | InSet | InList | Not | And | Or


def children(expr: Expr) -> tuple[Expr, ...]:
    """The nodes directly below ``expr``."""
    if isinstance(expr, Neg | Not | InSet | InList):
        return (expr.operand,)
    if isinstance(expr, Arith | Compare):
        return (expr.left, expr.right)
    if isinstance(expr, And | Or):
        return expr.operands
    return ()


def walk(expr: Expr) -> Iterator[Expr]:
    """``expr`` and every node below it, depth first (without recursion)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def depth(expr: Expr) -> int:
    """The tree's height (a leaf is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in children(node))
    return deepest


def columns_of(expr: Expr) -> frozenset[str]:
    """The frame columns ``expr`` reads."""
    return frozenset(n.column for n in walk(expr) if isinstance(n, FieldRef))


def lists_of(expr: Expr) -> frozenset[str]:
    """The names of the lists ``expr`` looks values up in."""
    return frozenset(n.name for n in walk(expr) if isinstance(n, InList))


def unparse(expr: Expr) -> str:
    """Text that parses back to ``expr`` (fully parenthesised below the top)."""
    match expr:
        case Num(value=v):
            return _number(v)
        case Str(value=s):
            return _string(s)
        case Bool(value=b):
            return "true" if b else "false"
        case FieldRef(name=name):
            return name
        case Neg(operand=o):
            return f"-({unparse(o)})"
        case Arith(op=op, left=a, right=b) | Compare(op=op, left=a, right=b):
            return f"({unparse(a)}) {op} ({unparse(b)})"
        case InSet(operand=o, values=vs, negated=neg):
            items = ", ".join(_string(v) if isinstance(v, str) else _number(v) for v in vs)
            return f"({unparse(o)}) {'not in' if neg else 'in'} ({items})"
        case InList(operand=o, name=name, negated=neg):
            return f"({unparse(o)}) {'not in' if neg else 'in'} list({_string(name)})"
        case Not(operand=o):
            return f"not ({unparse(o)})"
        case And(operands=ops):
            return " and ".join(f"({unparse(o)})" for o in ops)
        case Or(operands=ops):
            return " or ".join(f"({unparse(o)})" for o in ops)
    raise TypeError(f"not a rule expression node: {expr!r}")  # pragma: no cover


def _number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
