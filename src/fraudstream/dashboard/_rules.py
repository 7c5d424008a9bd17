"""What the Rules & lists page does, without Streamlit: its tables, texts and every change.

Every change goes through :func:`change_rules` or one of the list functions: the user's role is
re-read from the store (:func:`~fraudstream.dashboard._access.require`, permission *change
rules*), the change is made by :class:`~fraudstream.sinks.RuleStore` with that user as author
(a refused rule raises :class:`~fraudstream.rules.RuleError` and nothing is saved), and what
was saved goes to the dashboard's audit log too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pandas as pd  # type: ignore[import-untyped]

from fraudstream.dashboard._access import PERMISSIONS, User, audit, require
from fraudstream.dashboard._context import fmt_ms
from fraudstream.dashboard._db import Database
from fraudstream.dashboard._text import safe_text
from fraudstream.rules import Rule, RuleError
from fraudstream.rules._diff import RuleDelta
from fraudstream.sinks import ListEntry, ListInfo, RuleChange, RuleHits, RuleSetVersion, RuleStore

__all__ = [
    "EXPIRIES",
    "Refusal",
    "add_list_entries",
    "change_rules",
    "create_list",
    "delta_text",
    "entries_table",
    "expires_at",
    "history_text",
    "lists_table",
    "refusal",
    "remove_list_entries",
    "rules_table",
    "split_values",
]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS
#: The expiries offered for a list entry: label → lifetime in ms (``None``: never expires).
EXPIRIES: Final[dict[str, int | None]] = {
    "never": None,
    "1 hour": _HOUR_MS,
    "1 day": _DAY_MS,
    "7 days": 7 * _DAY_MS,
    "30 days": 30 * _DAY_MS,
    "90 days": 90 * _DAY_MS,
}
_SEPARATORS: Final = re.compile(r"[\n,]")

#: A store call that changes the rule set: the version after and the rules changed.
Saved = tuple[RuleSetVersion, list[RuleDelta]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused rule for the page: the one-line reason (with the position) and, when the
    fault is in the condition, the condition with a caret under it."""

    headline: str
    pointer: str | None


def refusal(exc: RuleError) -> Refusal:
    """``exc`` split into its first line and its caret block (``None`` without a position)."""
    first, _, rest = str(exc).partition("\n")
    return Refusal(safe_text(first), rest or None)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def rules_table(rules: Sequence[Rule], hits: Sequence[RuleHits], transactions: int) -> pd.DataFrame:
    """One row per rule (in decision order as given) with its record in the running detector:
    hits as a live and as a shadow rule, the hit rate over ``transactions`` (the stored
    transactions of the same range), verdicts so far and precision. Text is made inert."""
    found: dict[str, list[RuleHits]] = {}
    for h in hits:
        found.setdefault(h.rule_id, []).append(h)
    rows = []
    for r in rules:
        mine = found.get(r.id, [])
        total = sum(h.hits for h in mine)
        labelled = sum(h.labelled for h in mine)
        frauds = sum(h.frauds for h in mine)
        rows.append(
            {
                "id": r.id,
                "status": r.status,
                "action": r.action,
                "priority": r.priority,
                "hits": total,
                "hit rate": _pct(total / transactions if transactions else None),
                "precision": _pct(frauds / labelled if labelled else None),
                "condition": safe_text(r.expression),
                "description": safe_text(r.description),
                "author": safe_text(r.author),
                "as live": sum(h.hits for h in mine if not h.shadow),
                "as shadow": sum(h.hits for h in mine if h.shadow),
                "labelled": labelled,
                "frauds": frauds,
            }
        )
    return pd.DataFrame(rows)


def history_text(changes: Sequence[RuleChange]) -> str:
    """The audit trail as the command line prints it: version, time, who, what, the diff."""
    lines: list[str] = []
    for c in changes:
        lines.append(f"v{c.version}  {fmt_ms(c.at_ms)}Z  {c.author}  {c.change} {c.rule_id}")
        if c.comment:
            lines.append(f"    # {c.comment}")
        lines += [f"    {line}" for line in c.diff.splitlines()]
    return safe_lines(lines)


def delta_text(delta: Sequence[RuleDelta]) -> str:
    """What changed between two versions, rule by rule, with the diff."""
    lines: list[str] = []
    for d in delta:
        lines.append(f"{d.kind} {d.rule_id}")
        lines += [f"    {line}" for line in d.diff.splitlines()]
    return safe_lines(lines) if lines else "no rule changed"


def safe_lines(lines: Sequence[str]) -> str:
    """Lines of text from data, each made inert, joined by newlines."""
    return "\n".join(safe_text(line) for line in lines)


def lists_table(lists: Sequence[ListInfo]) -> pd.DataFrame:
    """One row per list: name, kind, description, entries in force and expired, creation."""
    return pd.DataFrame(
        [
            {
                "list": li.name,
                "kind": safe_text(li.kind),
                "description": safe_text(li.description),
                "in force": li.entries,
                "expired": li.expired,
                "created by": safe_text(li.created_by),
                "created (UTC)": fmt_ms(li.created_at_ms),
            }
            for li in lists
        ]
    )


def entries_table(entries: Sequence[ListEntry], now_ms: int) -> pd.DataFrame:
    """One row per entry: value, who added it and when, its expiry, whether it counts now."""
    return pd.DataFrame(
        [
            {
                "value": safe_text(e.value),
                "added by": safe_text(e.added_by),
                "added (UTC)": fmt_ms(e.added_at_ms),
                "expires (UTC)": "never" if e.expires_at_ms is None else fmt_ms(e.expires_at_ms),
                "in force": e.active(now_ms),
                "reason": safe_text(e.reason),
            }
            for e in entries
        ]
    )


def split_values(text: str) -> list[str]:
    """The values typed one per line (or separated by commas), trimmed, blanks and repeats
    dropped."""
    return list(dict.fromkeys(v.strip() for v in _SEPARATORS.split(text) if v.strip()))


def expires_at(choice: str, now_ms: int) -> int | None:
    """The expiry of an entry added at ``now_ms`` with the lifetime ``choice`` of
    :data:`EXPIRIES` (``None``: never)."""
    if choice not in EXPIRIES:
        raise RuleError(f"unknown expiry {choice!r}; one of {', '.join(EXPIRIES)}")
    lifetime = EXPIRIES[choice]
    return None if lifetime is None else now_ms + lifetime


def _signer(db: Database, user: User | None, action: str) -> User:
    return require(db, user, PERMISSIONS["change rules"], action)


def change_rules(
    db: Database,
    user: User | None,
    what: str,
    target: str,
    change: Callable[[str], Saved],
) -> str:
    """Run ``change(author)`` (a :class:`RuleStore` call) as ``user``, if the store says the
    user may change rules, and audit what it saved; a sentence saying what happened.

    ``what`` names the change (``rule added``), ``target`` the rule (``pre_auth big``).
    ``AccessDenied`` (audited) or :class:`RuleError` (nothing saved) otherwise.
    """
    signer = _signer(db, user, f"{what}: {target}")
    version, delta = change(signer.name)
    if not delta:
        return f"No change: the {version.mode} rule set stays at version {version.version}."
    audit(db, signer.name, what, target, f"{version.mode} rule set version {version.version}")
    return (
        f"{what.capitalize()} ({target}): the {version.mode} rule set is now version "
        f"{version.version}, by {signer.name}."
    )


def create_list(
    db: Database, store: RuleStore, user: User | None, name: str, kind: str, description: str
) -> str:
    """Create an empty list as ``user``; audited."""
    signer = _signer(db, user, f"create list {name}")
    store.create_list(name, kind=kind, description=description, author=signer.name)
    audit(db, signer.name, "list created", name, kind)
    return f"List {name} created by {signer.name}."


def add_list_entries(
    db: Database,
    store: RuleStore,
    user: User | None,
    name: str,
    values: Sequence[str],
    *,
    expires_at_ms: int | None,
    reason: str,
) -> str:
    """Add (or renew) entries of list ``name`` as ``user``; audited."""
    signer = _signer(db, user, f"add to list {name}")
    store.add_entries(name, values, author=signer.name, reason=reason, expires_at_ms=expires_at_ms)
    until = "no expiry" if expires_at_ms is None else f"until {fmt_ms(expires_at_ms)} UTC"
    audit(db, signer.name, "list entries added", name, f"{len(values)} value(s), {until}")
    return f"{len(values)} value(s) added to {name} ({until}) by {signer.name}."


def remove_list_entries(
    db: Database, store: RuleStore, user: User | None, name: str, values: Sequence[str], reason: str
) -> str:
    """Remove entries of list ``name`` as ``user`` (all of them, or none); audited."""
    signer = _signer(db, user, f"remove from list {name}")
    store.remove_entries(name, values, author=signer.name, reason=reason)
    audit(db, signer.name, "list entries removed", name, f"{len(values)} value(s)")
    return f"{len(values)} value(s) removed from {name} by {signer.name}."
