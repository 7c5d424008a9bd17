"""What changed between two rules, or two rule sets, in words a reviewer reads.

Pure: used by the store's audit trail (``sinks._rules_store``) and ``fraudstream rules diff``.
A rule's ``author`` is who first wrote it and is not a change; the other fields are compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, NamedTuple

from fraudstream.rules._rules import Rule

__all__ = ["ChangeKind", "RuleDelta", "describe", "rule_diff", "set_delta"]

ChangeKind = Literal["add", "edit", "status", "remove"]
#: The fields compared, in the order a diff lists them.
_FIELDS: Final = ("expression", "action", "status", "priority", "description")
_TEXTS: Final = frozenset({"expression", "description"})


class RuleDelta(NamedTuple):
    """One rule's change between two sets: ``before`` is ``None`` for an added rule, ``after``
    for a removed one."""

    rule_id: str
    kind: ChangeKind
    before: Rule | None
    after: Rule | None
    diff: str


def describe(rule: Rule) -> str:
    """One line: ``review, priority 100, draft: <expression>``."""
    return f"{rule.action}, priority {rule.priority}, {rule.status}: {rule.expression}"


def _changed(before: Rule, after: Rule) -> list[str]:
    return [f for f in _FIELDS if getattr(before, f) != getattr(after, f)]


def rule_diff(before: Rule | None, after: Rule | None) -> str:
    """The readable difference, one line per changed field (``""`` when nothing changed):

    - added: ``+ review, priority 100, draft: amount > 10_000``;
    - removed: ``- ...`` the same;
    - edited: ``status: draft -> live``, ``priority: 100 -> 10``; a changed expression or
      description as a ``-`` line and a ``+`` line under ``expression:``.
    """
    if before is None and after is None:
        return ""
    if before is None:
        assert after is not None  # noqa: S101 - both None returned above
        return f"+ {describe(after)}"
    if after is None:
        return f"- {describe(before)}"
    return "\n".join(
        _field_diff(f, getattr(before, f), getattr(after, f)) for f in _changed(before, after)
    )


def _field_diff(name: str, old: object, new: object) -> str:
    if name in _TEXTS:
        return f"{name}:\n  - {old}\n  + {new}"
    return f"{name}: {old} -> {new}"


def _kind(before: Rule | None, after: Rule | None) -> ChangeKind | None:
    if before is None:
        return "add"
    if after is None:
        return "remove"
    changed = _changed(before, after)
    if not changed:
        return None
    return "status" if changed == ["status"] else "edit"


def set_delta(old: Iterable[Rule], new: Iterable[Rule]) -> list[RuleDelta]:
    """The rules changed from ``old`` to ``new`` (ids in sorted order); ``[]`` when the sets
    hold the same rules."""
    before = {r.id: r for r in old}
    after = {r.id: r for r in new}
    out: list[RuleDelta] = []
    for rule_id in sorted(before.keys() | after.keys()):
        b, a = before.get(rule_id), after.get(rule_id)
        kind = _kind(b, a)
        if kind is not None:
            out.append(RuleDelta(rule_id, kind, b, a, rule_diff(b, a)))
    return out
