"""Rules, versioned rule sets, and the decision order.

Decision order (Stripe Radar's: allow rules, then block rules, then review rules, with the
model's own thresholds acting like the last block and review rules):

1. **allow**: a live allow rule fires (allow-lists are allow rules such as
   ``account in list("trusted")``) → *allow*, whatever the block rules and the model say;
2. else **block**: a live block rule fires, or the model's decision is block → *block*;
3. else **review**: a live review rule fires, or the model's decision is review → *review*;
4. else *allow*.

So a rule only ever raises the model's decision, except an allow rule, which overrides it; a
review rule never turns the model's block into a review. Every live rule that fired is recorded,
in this order (action, then ``priority`` ascending, then id): the first is the one that decided
when a rule decided. Shadow rules are evaluated and recorded apart, and never act; draft and
paused rules are not evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt

from fraudstream.rules._ast import Expr
from fraudstream.rules._compile import WORD_BITS, Bools, Columns, Compiled, Lists, Words, words
from fraudstream.rules._errors import RuleError
from fraudstream.rules._fields import Schema
from fraudstream.rules._parse import parse

__all__ = ["ACTIONS", "STATUSES", "Action", "Decided", "Rule", "RuleSet", "Status", "validate"]

Action = Literal["allow", "review", "block"]
Status = Literal["draft", "shadow", "live", "paused"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
#: Actions in decision order.
_ORDER: Final[dict[str, int]] = {"allow": 0, "block": 1, "review": 2}
#: Decision codes, as in :data:`fraudstream.schema.DECISIONS`.
ALLOW, REVIEW, BLOCK = 0, 1, 2
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_NONE: Final[tuple[str, ...]] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A fraud team's rule: when ``expression`` holds, take ``action``.

    ``priority`` orders rules of the same action (lower first) in the fired ids; ``status``:
    *draft* (being written), *shadow* (evaluated and recorded, never acting), *live*, *paused*.
    """

    id: str
    expression: str
    action: Action
    description: str = ""
    priority: int = 100
    status: Status = "draft"
    author: str = ""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise RuleError(
                f"bad rule id {self.id!r}: 1-64 letters, digits, _ . : -, starting with a letter "
                "or digit"
            )
        if self.action not in ACTIONS:
            raise RuleError(f"unknown action {self.action!r}; expected one of {ACTIONS}")
        if self.status not in STATUSES:
            raise RuleError(f"unknown status {self.status!r}; expected one of {STATUSES}")

    @property
    def order(self) -> tuple[int, int, str]:
        """Its place in the decision order."""
        return (_ORDER[self.action], self.priority, self.id)


def validate(rule: Rule, schema: Schema, lists: Collection[str] | None = None) -> Expr:
    """The checked tree of ``rule``'s condition, or a :class:`RuleError` naming the rule and
    pointing at the fault (``lists``: the list names that exist; ``None`` accepts any)."""
    try:
        return parse(rule.expression, schema, lists)
    except RuleError as exc:
        raise exc.for_rule(rule.id) from None


class Decided(NamedTuple):
    """A batch's decisions after rules: codes (0 allow, 1 review, 2 block) and, per row, the
    ids of the live rules and of the shadow rules that fired (``()`` when none did)."""

    decision: npt.NDArray[np.int8]
    fired: list[tuple[str, ...]]
    shadow_fired: list[tuple[str, ...]]


class RuleSet:
    """An immutable, versioned set of rules, validated against ``schema`` when it is built.

    :meth:`with_rule` and :meth:`without` return the next version and leave this one as it was,
    so a refused rule never changes the set in force.
    """

    __slots__ = (
        "_action_bits",
        "_compiled",
        "_exprs",
        "_ids",
        "_live",
        "_shadow",
        "rules",
        "schema",
        "version",
    )

    def __init__(
        self,
        rules: Iterable[Rule],
        schema: Schema,
        *,
        version: int = 1,
        lists: Collection[str] | None = None,
    ) -> None:
        ordered = tuple(sorted(rules, key=lambda r: r.order))
        seen: set[str] = set()
        for r in ordered:
            if r.id in seen:
                raise RuleError(f"rule id {r.id!r} is used twice")
            seen.add(r.id)
        self.rules = ordered
        self.schema = schema
        self.version = version
        self._exprs: dict[str, Expr] = {r.id: validate(r, schema, lists) for r in ordered}
        self._live = tuple(r for r in ordered if r.status == "live")
        self._shadow = tuple(r for r in ordered if r.status == "shadow")
        self._compiled = Compiled({r.id: self._exprs[r.id] for r in (*self._live, *self._shadow)})
        self._action_bits = _action_bits(self._live)
        #: the live and the shadow rules' ids, in order: the groups of :meth:`Compiled.packed`
        self._ids = (tuple(r.id for r in self._live), tuple(r.id for r in self._shadow))

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version}, rules={len(self.rules)}, live={len(self._live)})"

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        """The rule with id ``rule_id`` (``None`` if there is none)."""
        return next((r for r in self.rules if r.id == rule_id), None)

    def expression(self, rule_id: str) -> Expr:
        """The checked tree of a rule's condition."""
        return self._exprs[rule_id]

    @property
    def live(self) -> tuple[Rule, ...]:
        """The rules that act, in decision order."""
        return self._live

    @property
    def shadow(self) -> tuple[Rule, ...]:
        """The rules evaluated and recorded without acting."""
        return self._shadow

    @property
    def columns(self) -> frozenset[str]:
        """The frame columns the live and shadow rules read."""
        return self._compiled.columns

    @property
    def list_names(self) -> frozenset[str]:
        """The lists the live and shadow rules look values up in."""
        return self._compiled.list_names

    def with_rule(self, rule: Rule, *, lists: Collection[str] | None = None) -> RuleSet:
        """The next version, with ``rule`` added or replacing the rule of the same id."""
        others = [r for r in self.rules if r.id != rule.id]
        return RuleSet([*others, rule], self.schema, version=self.version + 1, lists=lists)

    def without(self, rule_id: str) -> RuleSet:
        """The next version, without rule ``rule_id``."""
        if self.get(rule_id) is None:
            raise RuleError(f"no rule {rule_id!r} in rule set version {self.version}")
        rest = [r for r in self.rules if r.id != rule_id]
        return RuleSet(rest, self.schema, version=self.version + 1)

    def with_status(self, rule_id: str, status: Status) -> RuleSet:
        """The next version, with rule ``rule_id`` in ``status`` (shadow → live, pause, ...)."""
        rule = self.get(rule_id)
        if rule is None:
            raise RuleError(f"no rule {rule_id!r} in rule set version {self.version}")
        return self.with_rule(replace(rule, status=status))

    def evaluate(
        self, columns: Columns, lists: Lists | None = None, *, rows: int | None = None
    ) -> dict[str, Bools]:
        """Live and shadow rules' hits on a batch: rule id → bool array."""
        return self._compiled.evaluate(columns, lists, rows=rows)

    def decide(
        self,
        columns: Columns,
        model_decision: npt.ArrayLike,
        lists: Lists | None = None,
        *,
        normalised: bool = False,
    ) -> Decided:
        """The decisions after rules, in the documented order, and the rules that fired.
        ``normalised``: ``columns`` come from :func:`~fraudstream.rules.batch_frame`."""
        model = np.asarray(model_decision, dtype=np.int8)
        live_ids, shadow_ids = self._ids
        live, shadow = self._compiled.packed(
            columns, self._ids, lists, rows=len(model), normalised=normalised
        )
        hit: dict[Action, Bools] = {
            action: ((live & self._action_bits[action]) != 0).any(axis=1) for action in ACTIONS
        }
        return Decided(
            _apply(model, hit), _fired_ids(live_ids, live), _fired_ids(shadow_ids, shadow)
        )


def combine(
    model_decision: npt.NDArray[np.int8], rule_hits: Sequence[tuple[Action, Bools]]
) -> npt.NDArray[np.int8]:
    """Decisions from the model's and the rules' hits (action, bool array), in decision order."""
    hit = {action: np.zeros(len(model_decision), dtype=np.bool_) for action in ACTIONS}
    for action, h in rule_hits:
        hit[action] |= h
    return _apply(model_decision, hit)


def _apply(
    model_decision: npt.NDArray[np.int8], hit: Mapping[Action, Bools]
) -> npt.NDArray[np.int8]:
    decision = np.asarray(model_decision, dtype=np.int8).copy()
    decision[hit["review"] & (decision < REVIEW)] = REVIEW
    decision[hit["block"]] = BLOCK
    decision[hit["allow"]] = ALLOW
    return decision


def _action_bits(rules: Sequence[Rule]) -> dict[Action, Words]:
    """Per action, the bits of ``rules`` (packed as :meth:`Compiled.packed` packs them) that take
    it."""
    out: dict[Action, Words] = {
        action: np.zeros(words(len(rules)), dtype=np.int64) for action in ACTIONS
    }
    for at, rule in enumerate(rules):
        out[rule.action][at // WORD_BITS] |= np.int64(1 << (at % WORD_BITS))
    return out


def _fired_ids(ids: Sequence[str], bits: Words) -> list[tuple[str, ...]]:
    """Per row, the ids among ``ids`` (in that order) whose bits are set in ``bits``.

    Rows that fired the same rules share one tuple, built once per distinct combination; rows
    where none fired share ``()``. (A tuple built row by row was half the rules' cost.)
    """
    if not ids:
        return [_NONE] * len(bits)
    fired = np.flatnonzero((bits != 0).any(axis=1))
    if not len(fired):
        return [_NONE] * len(bits)
    keys = np.ascontiguousarray(bits[fired])
    flat = (
        keys[:, 0]
        if keys.shape[1] == 1
        else keys.view(np.dtype((np.void, keys.itemsize * keys.shape[1]))).ravel()
    )
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    shifts = np.arange(WORD_BITS, dtype=np.int64)
    set_bits = ((keys[first][:, :, None] >> shifts) & 1).astype(np.bool_)
    set_bits = set_bits.reshape(len(first), -1)[:, : len(ids)]
    names = np.asarray(ids, dtype=object)
    combos = np.empty(len(first) + 1, dtype=object)  # 0: none fired
    combos[0] = _NONE
    combos[1:] = [tuple(names[row].tolist()) for row in set_bits]
    codes = np.zeros(len(bits), dtype=np.intp)
    codes[fired] = inverse.ravel() + 1
    rows: list[tuple[str, ...]] = combos[codes].tolist()
    return rows
