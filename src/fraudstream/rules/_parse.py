"""The rule expression language: a tokenizer and a recursive-descent parser that builds a typed
tree (:mod:`fraudstream.rules._ast`) checked against a :class:`~fraudstream.rules.Schema`.

Grammar (lowest precedence first; keywords are lowercase)::

    rule       := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum [ ("==" | "!=" | "<" | "<=" | ">" | ">=") sum | ["not"] "in" members ]
    members    := "list" "(" STRING ")" | "(" literal ("," literal)* [","] ")"
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | STRING | "true" | "false" | FIELD | "(" or_expr ")"
    literal    := ["-"] NUMBER | STRING

``NUMBER`` is ``10_000``, ``0.5`` or ``1e6`` (underscores between digits, as in Python);
``STRING`` is double-quoted with ``\\"`` and ``\\\\`` as its only escapes. Comparisons do not chain.
Nothing here evaluates the text: it only becomes a tree of the node types above.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal, cast

from fraudstream.rules._ast import (
    And,
    Arith,
    ArithOp,
    Bool,
    Compare,
    CompareOp,
    Expr,
    FieldRef,
    InList,
    InSet,
    Neg,
    Not,
    Num,
    Or,
    Str,
    depth,
    unparse,
)
from fraudstream.rules._errors import RuleError
from fraudstream.rules._fields import Schema

__all__ = ["KEYWORDS", "parse"]

#: Reserved words: never field names.
KEYWORDS: Final = frozenset({"and", "or", "not", "in", "list", "true", "false"})
#: Longer texts are refused before tokenizing (a rule is a line or two, not a program).
MAX_RULE_CHARS: Final = 10_000
#: Parentheses, ``not`` and ``-`` nest at most this deep; the tree is at most _MAX_DEPTH deep.
_MAX_NESTING: Final = 50
_MAX_DEPTH: Final = 200

TokenKind = Literal["num", "str", "name", "op", "end"]

_TOKEN: Final = re.compile(
    r"""(?P<ws>\s+)
      | (?P<num>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|,)
      | (?P<str>")""",
    re.VERBOSE,
)
_HINTS: Final = {
    "=": "use == to compare",
    "!": "use != or not",
    "&": "use and",
    "|": "use or",
    "'": 'strings use double quotes: "..."',
}
_COMPARE_OPS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    pos: int
    value: float | str | None = None


def parse(text: str, schema: Schema, lists: Collection[str] | None = None) -> Expr:
    """The typed tree of condition ``text``; raises :class:`RuleError` pointing at the fault.

    ``lists``: the names of the lists that exist (``None``: any name is accepted).
    """
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"the rule is {len(text)} characters long; at most {MAX_RULE_CHARS}")
    parser = _Parser(text, _tokenize(text), schema, lists)
    expr = parser.or_expr()
    parser.expect_end()
    if depth(expr) > _MAX_DEPTH:
        raise RuleError(f"the rule is too deeply nested (more than {_MAX_DEPTH} levels)")
    if expr.type != "bool":
        raise RuleError(
            f"a rule must be a condition, not a {expr.type} (compare it, e.g. `... > 0`)",
            text=text,
            pos=expr.pos,
        )
    return expr


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = _HINTS.get(ch[0], "")
            raise RuleError(
                f"unexpected character {ch!r}" + (f": {hint}" if hint else ""), text=text, pos=pos
            )
        kind = m.lastgroup
        if kind == "str":
            tokens.append(_string(text, pos))
            pos = tokens[-1].pos + len(tokens[-1].text)
            continue
        if kind == "num":
            tokens.append(_number(text, m.group(), pos))
        elif kind in ("name", "op"):
            tokens.append(_Token(cast(TokenKind, kind), m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _number(text: str, raw: str, pos: int) -> _Token:
    try:
        value = float(raw)
    except ValueError:
        raise RuleError(
            f"malformed number {raw!r} (underscores go between digits: 10_000)", text=text, pos=pos
        ) from None
    if not math.isfinite(value):
        raise RuleError(f"number {raw!r} is too large", text=text, pos=pos)
    return _Token("num", raw, pos, value)


def _string(text: str, start: int) -> _Token:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return _Token("str", text[start : i + 1], start, "".join(out))
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                raise RuleError(
                    'unknown escape in a string: only \\" and \\\\ are allowed', text=text, pos=i
                )
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise RuleError('unterminated string: it needs a closing "', text=text, pos=start)


class _Parser:
    """One recursive-descent pass: one method per grammar rule, types checked as nodes are built."""

    def __init__(
        self, text: str, tokens: list[_Token], schema: Schema, lists: Collection[str] | None
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.schema = schema
        self.lists = lists
        self.depth = 0

    # -- token helpers ---------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def at(self, kind: TokenKind, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def take(self) -> _Token:
        t = self.tok
        self.i += 1
        return t

    def fail(self, reason: str, pos: int) -> RuleError:
        return RuleError(reason, text=self.text, pos=pos)

    def expect(self, kind: TokenKind, text: str, what: str) -> _Token:
        if not self.at(kind, text):
            raise self.fail(f"expected {what}, found {self.describe(self.tok)}", self.tok.pos)
        return self.take()

    def expect_end(self) -> None:
        t = self.tok
        if t.kind == "end":
            return
        if t.text in _COMPARE_OPS:
            raise self.fail("comparisons do not chain: join them with `and`", t.pos)
        if t.kind == "name" and t.text.lower() in KEYWORDS:
            raise self.fail(f"unknown word `{t.text}` (keywords are lowercase)", t.pos)
        raise self.fail(f"expected `and`, `or` or the end, found {self.describe(t)}", t.pos)

    @staticmethod
    def describe(t: _Token) -> str:
        if t.kind == "end":
            return "the end of the rule"
        return f"`{t.text}`" if t.kind != "str" else f"the string {t.text}"

    # -- grammar ---------------------------------------------------------------------------
    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.fail(f"the rule nests deeper than {_MAX_NESTING} levels", self.tok.pos)

    def or_expr(self) -> Expr:
        self.nest()
        ops = [self.and_expr()]
        while self.at("name", "or"):
            op = self.take()
            if len(ops) == 1:
                self.condition(ops[0], "or", op.pos)
            ops.append(self.condition(self.and_expr(), "or", op.pos))
        self.depth -= 1
        return ops[0] if len(ops) == 1 else Or(tuple(ops), ops[0].pos)

    def and_expr(self) -> Expr:
        ops = [self.not_expr()]
        while self.at("name", "and"):
            op = self.take()
            if len(ops) == 1:
                self.condition(ops[0], "and", op.pos)
            ops.append(self.condition(self.not_expr(), "and", op.pos))
        return ops[0] if len(ops) == 1 else And(tuple(ops), ops[0].pos)

    def not_expr(self) -> Expr:
        if not self.at("name", "not"):
            return self.comparison()
        op = self.take()
        self.nest()
        operand = self.condition(self.not_expr(), "not", op.pos)
        self.depth -= 1
        return Not(operand, op.pos)

    def comparison(self) -> Expr:
        left = self.sum()
        t = self.tok
        if t.kind == "op" and t.text in _COMPARE_OPS:
            self.take()
            right = self.sum()
            return self.compare(cast(CompareOp, t.text), left, right, t.pos)
        negated = self.at("name", "not") and self.tokens[self.i + 1].text == "in"
        if negated:
            self.take()
        if self.at("name", "in"):
            return self.membership(left, negated)
        return left

    def sum(self) -> Expr:
        left = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            left = self.arith(cast(ArithOp, op.text), left, self.product(), op.pos)
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.take()
            left = self.arith(cast(ArithOp, op.text), left, self.unary(), op.pos)
        return left

    def unary(self) -> Expr:
        if not self.at("op", "-"):
            return self.atom()
        op = self.take()
        if self.tok.kind == "num":  # a negative literal, as in `amount > -5`
            return Num(-cast(float, self.take().value), op.pos)
        self.nest()
        operand = self.unary()
        self.depth -= 1
        self.need(operand, "number", f"`-` needs a number, not a {operand.type}", op.pos)
        return Neg(operand, op.pos)

    def atom(self) -> Expr:
        t = self.tok
        if t.kind == "num":
            self.take()
            return Num(cast(float, t.value), t.pos)
        if t.kind == "str":
            self.take()
            return Str(cast(str, t.value), t.pos)
        if t.kind == "name":
            return self.name()
        if self.at("op", "("):
            self.take()
            inner = self.or_expr()
            self.expect("op", ")", "`)`")
            return inner
        raise self.fail(f"expected a value, a field or `(`, found {self.describe(t)}", t.pos)

    def name(self) -> Expr:
        t = self.take()
        if t.text in ("true", "false"):
            return Bool(t.text == "true", t.pos)
        if t.text in KEYWORDS:
            raise self.fail(f"expected a value or a field, found `{t.text}`", t.pos)
        field = self.schema.get(t.text)
        if field is None:
            raise self.fail(self.unknown_field(t.text), t.pos)
        return FieldRef(field.name, field.column, field.type, t.pos)

    def unknown_field(self, name: str) -> str:
        if name.lower() in KEYWORDS:
            return f"unknown field {name!r} (keywords are lowercase: `{name.lower()}`)"
        head = f"unknown field {name!r} in mode {self.schema.mode!r}"
        why = self.schema.absent_reason(name)
        if why:
            return f"{head}: {why}"
        close = self.schema.closest(name)
        return head + (f" (did you mean {', '.join(close)}?)" if close else "")

    # -- typed node builders ---------------------------------------------------------------
    def need(self, e: Expr, want: str, reason: str, pos: int) -> None:
        if e.type != want:
            raise self.fail(reason, pos)

    def condition(self, e: Expr, op: str, pos: int) -> Expr:
        what = _show(e)
        self.need(e, "bool", f"`{op}` needs conditions, but {what} is a {e.type}", pos)
        return e

    def arith(self, op: ArithOp, left: Expr, right: Expr, pos: int) -> Expr:
        for side in (left, right):
            self.need(
                side, "number", f"`{op}` needs numbers, but {_show(side)} is a {side.type}", pos
            )
        return Arith(op, left, right, pos)

    def compare(self, op: CompareOp, left: Expr, right: Expr, pos: int) -> Expr:
        if left.type != right.type:
            raise self.fail(
                f"cannot compare {_show(left)} ({left.type}) with {_show(right)} ({right.type})"
                + _flag_hint(left, right),
                pos,
            )
        if left.type != "number" and op not in ("==", "!="):
            raise self.fail(f"{left.type}s are compared with == or != only, not {op}", pos)
        for a, b in ((left, right), (right, left)):
            self.check_value(a, b)
        return Compare(op, left, right, pos)

    def check_value(self, field: Expr, lit: Expr) -> None:
        """A string literal compared with ``type`` must be one of its values."""
        if not isinstance(field, FieldRef) or not isinstance(lit, Str):
            return
        allowed = f.values if (f := self.schema.get(field.name)) else ()
        if allowed and lit.value not in allowed:
            raise self.fail(
                f"{field.name} is never {lit.value!r}; its values are {', '.join(allowed)}",
                lit.pos,
            )

    def membership(self, operand: Expr, negated: bool) -> Expr:
        in_tok = self.take()
        if self.at("name", "list"):
            self.take()
            self.expect("op", "(", '`(` after `list`, as in list("mules")')
            name_tok = self.tok
            if name_tok.kind != "str":
                raise self.fail(
                    f"expected a list name in double quotes, found {self.describe(name_tok)}",
                    name_tok.pos,
                )
            self.take()
            self.expect("op", ")", "`)`")
            name = cast(str, name_tok.value)
            if self.lists is not None and name not in self.lists:
                known = ", ".join(sorted(self.lists)) or "none"
                raise self.fail(f"unknown list {name!r} (lists: {known})", name_tok.pos)
            self.need(
                operand,
                "string",
                f"lists hold strings, but {_show(operand)} is a {operand.type}",
                in_tok.pos,
            )
            return InList(operand, name, negated, in_tok.pos)
        return self.literal_set(operand, negated, in_tok.pos)

    def literal_set(self, operand: Expr, negated: bool, pos: int) -> Expr:
        self.expect("op", "(", '`list("name")` or `(` after `in`')
        values = [self.literal()]
        while self.at("op", ","):
            self.take()
            if self.at("op", ")"):  # a trailing comma
                break
            values.append(self.literal())
        self.expect("op", ")", "`,` or `)`")
        if operand.type == "bool":
            raise self.fail(f"`in` needs a number or a string, but {_show(operand)} is a bool", pos)
        for v in values:
            if v.type != operand.type:
                raise self.fail(
                    f"cannot compare {_show(operand)} ({operand.type}) with {_show(v)} ({v.type})",
                    v.pos,
                )
            self.check_value(operand, v)
        if operand.type == "number":
            return InSet(operand, tuple(cast(Num, v).value for v in values), negated, pos)
        return InSet(operand, tuple(cast(Str, v).value for v in values), negated, pos)

    def literal(self) -> Expr:
        t = self.tok
        sign = 1.0
        if self.at("op", "-"):
            self.take()
            sign = -1.0
        lit = self.tok
        if lit.kind == "num":
            self.take()
            return Num(sign * cast(float, lit.value), t.pos)
        if lit.kind == "str" and sign > 0:
            self.take()
            return Str(cast(str, lit.value), t.pos)
        raise self.fail(f"expected a number or a string, found {self.describe(lit)}", lit.pos)


def _show(e: Expr) -> str:
    if isinstance(e, FieldRef):
        return f"`{e.name}`"
    if isinstance(e, Num | Str | Bool):
        return f"`{unparse(e)}`"
    return "the expression"


def _flag_hint(left: Expr, right: Expr) -> str:
    """How to use a flag field, when one side of a mistyped comparison is one."""
    for e in (left, right):
        if isinstance(e, FieldRef) and e.type == "bool":
            return f": `{e.name}` is a flag, write `{e.name}` or `not {e.name}`"
    return ""
