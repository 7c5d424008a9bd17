"""The fraud team's rule sets and lists in the store: versions, audit trail, change token.

Every change to a mode's rule set (add, edit, status, remove, import) saves the whole set as the
next version (1, 2, … per mode) with its author, time and comment, and one audit row per rule it
changed: the rule before and after and a readable diff. The new set is validated as a
:class:`~fraudstream.rules.RuleSet` (fields of the mode, known lists) before anything is written:
a refused rule raises :class:`~fraudstream.rules.RuleError` and the version in force stays.

A running detector polls :meth:`RuleStore.token` between batches (one small query) and, when it
moves, reloads with :meth:`RuleStore.load` and :meth:`RuleStore.lists_snapshot` (and again at the
snapshot's ``next_expiry_ms``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Any, Final, NamedTuple

import msgspec

from fraudstream.rules import Rule, RuleError, RuleSet, Schema, Status
from fraudstream.rules._diff import ChangeKind, RuleDelta, set_delta
from fraudstream.sinks import _lists_store as lists_
from fraudstream.sinks._lists_store import ListChange, ListEntry, ListInfo, ListsSnapshot
from fraudstream.sinks._sqlconn import SqlConnection, Tx

__all__ = ["ChangeToken", "RuleChange", "RuleSetVersion", "RuleStore"]

_MAX_TEXT_CHARS: Final = 500
_LOCK: Final = "rule_set_versions"
_VERSION_COLUMNS: Final = "mode, version, rules, author, created_at_ms, comment"
_CHANGE_COLUMNS: Final = (
    "mode, version, rule_id, change, author, at_ms, comment, before, after, diff"
)


def now_ms() -> int:
    """Wall-clock time in milliseconds."""
    return time.time_ns() // 1_000_000


class ChangeToken(NamedTuple):
    """What a detector compares between batches: the mode's latest rule-set version and the
    lists' latest change (both 0 before the first)."""

    rules_version: int
    lists_seq: int


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    """One saved version of a mode's rule set (version 0: the empty set before any change)."""

    mode: str
    version: int
    rules: tuple[Rule, ...]
    author: str
    created_at_ms: int
    comment: str


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One row of the audit trail: a rule's change in a version."""

    mode: str
    version: int
    rule_id: str
    change: ChangeKind
    author: str
    at_ms: int
    comment: str
    before: Rule | None
    after: Rule | None
    diff: str


def _encode(rules: Iterable[Rule]) -> str:
    return msgspec.json.encode([asdict(r) for r in rules]).decode()


def _encode_one(rule: Rule | None) -> str | None:
    return None if rule is None else msgspec.json.encode(asdict(rule)).decode()


def _decode(text: str) -> tuple[Rule, ...]:
    return tuple(Rule(**d) for d in msgspec.json.decode(text))


def _decode_one(text: str | None) -> Rule | None:
    return None if text is None else Rule(**msgspec.json.decode(text))


def _text(what: str, value: str) -> str:
    if len(value) > _MAX_TEXT_CHARS:
        raise RuleError(f"{what} is {len(value)} characters; at most {_MAX_TEXT_CHARS}")
    return value


def _author(author: str) -> str:
    if not author.strip():
        raise RuleError("no author: say who makes the change")
    return _text("author", author)


def _version(row: Sequence[Any]) -> RuleSetVersion:
    mode, version, rules, author, at_ms, comment = row
    return RuleSetVersion(mode, int(version), _decode(rules), author, int(at_ms), comment)


class RuleStore:
    """Rule sets (per mode) and lists in the store at ``url`` (``schema``: PostgreSQL's).

    ``schema_for(mode)`` gives the fields rules are validated against when saved (default
    :meth:`Schema.for_mode`). One connection: use one instance per thread.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        timeout_s: float = 10.0,
        schema_for: Callable[[str], Schema] = Schema.for_mode,
    ) -> None:
        self.db = SqlConnection(url, schema=schema, timeout_s=timeout_s)
        self.schema_for = schema_for

    def __repr__(self) -> str:
        return f"RuleStore({self.db!r})"

    def open(self) -> RuleStore:
        """Migrate the store if needed and connect; returns ``self``."""
        self.db.open()
        return self

    def close(self) -> None:
        """Release the connection."""
        self.db.close()

    def __enter__(self) -> RuleStore:
        return self.open()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- reading -------------------------------------------------------------------------------

    def token(self, mode: str) -> ChangeToken:
        """The change token of ``mode``'s rules and of the lists: one query."""
        row = self.db.rows(
            "SELECT (SELECT max(version) FROM rule_set_versions WHERE mode = ?), "
            "(SELECT max(seq) FROM rule_list_changes)",
            (mode,),
        )[0]
        return ChangeToken(int(row[0] or 0), int(row[1] or 0))

    def current(self, mode: str) -> RuleSetVersion:
        """The version in force of ``mode``'s rule set."""
        return self._latest(self.db, mode)

    def _latest(self, db: Tx | SqlConnection, mode: str) -> RuleSetVersion:
        self.schema_for(mode)  # an unknown mode is refused
        rows = db.rows(
            f"SELECT {_VERSION_COLUMNS} FROM rule_set_versions WHERE mode = ? "
            "ORDER BY version DESC LIMIT 1",
            (mode,),
        )
        return _version(rows[0]) if rows else RuleSetVersion(mode, 0, (), "", 0, "")

    def at_version(self, mode: str, version: int) -> RuleSetVersion:
        """Version ``version`` of ``mode``'s set (0: empty); :class:`RuleError` if not saved."""
        if version == 0:
            return RuleSetVersion(mode, 0, (), "", 0, "")
        rows = self.db.rows(
            f"SELECT {_VERSION_COLUMNS} FROM rule_set_versions WHERE mode = ? AND version = ?",
            (mode, version),
        )
        if not rows:
            latest = self.current(mode).version
            raise RuleError(f"no version {version} of the {mode} rule set (latest: {latest})")
        return _version(rows[0])

    def load(self, mode: str, schema: Schema | None = None) -> tuple[int, RuleSet]:
        """``(version, RuleSet)`` in force for ``mode``, validated against ``schema`` (the
        detector's bundle's; default ``schema_for(mode)``) without checking list names."""
        v = self.current(mode)
        return v.version, RuleSet(v.rules, schema or self.schema_for(mode), version=v.version)

    def history(
        self, mode: str, rule_id: str | None = None, limit: int | None = None
    ) -> list[RuleChange]:
        """The audit trail of ``mode`` (of one rule if given), newest first."""
        where, params = "WHERE mode = ?", [mode]
        if rule_id is not None:
            where += " AND rule_id = ?"
            params.append(rule_id)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self.db.rows(
            f"SELECT {_CHANGE_COLUMNS} FROM rule_changes {where} "
            f"ORDER BY version DESC, rule_id{tail}",
            params,
        )
        return [
            RuleChange(m, int(v), r, c, a, int(t), co, _decode_one(b), _decode_one(af), d)
            for m, v, r, c, a, t, co, b, af, d in rows
        ]

    # --- changing rules --------------------------------------------------------------------------

    def save(
        self,
        mode: str,
        change: Callable[[RuleSetVersion], Iterable[Rule]],
        *,
        author: str,
        comment: str = "",
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Apply ``change`` (the version in force → the new rules) and save the result as the
        next version with its audit rows, in one transaction.

        Returns the version in force afterwards and the changes made; ``[]`` when the rules are
        the same (nothing written). A rule that does not validate raises :class:`RuleError`
        and nothing is written.
        """
        _author(author)
        _text("comment", comment)
        schema = self.schema_for(mode)
        with self.db.transaction(f"save the {mode} rule set", _LOCK) as tx:
            current = self._latest(tx, mode)
            new = tuple(change(current))
            delta = set_delta(current.rules, new)
            if not delta:
                return current, []
            version = current.version + 1
            checked = RuleSet(new, schema, version=version, lists=lists_.list_names(tx))
            at = now_ms()
            tx.execute(
                f"INSERT INTO rule_set_versions ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (mode, version, _encode(checked.rules), author, at, comment),
            )
            tx.execute_many(
                f"INSERT INTO rule_changes ({_CHANGE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (mode, version, d.rule_id, d.kind, author, at, comment)
                    + (_encode_one(d.before), _encode_one(d.after), d.diff)
                    for d in delta
                ],
            )
        return RuleSetVersion(mode, version, checked.rules, author, at, comment), delta

    def add(
        self, mode: str, rule: Rule, *, author: str, comment: str = ""
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Add a new rule (its ``author`` defaults to ``author``); refused if the id exists."""

        def change(v: RuleSetVersion) -> list[Rule]:
            if any(r.id == rule.id for r in v.rules):
                raise RuleError(
                    f"rule {rule.id!r} exists already in the {mode} rule set (version "
                    f"{v.version}); edit it instead"
                )
            return [*v.rules, replace(rule, author=rule.author or author)]

        return self.save(mode, change, author=author, comment=comment)

    def edit(
        self, mode: str, rule_id: str, *, author: str, comment: str = "", **fields: Any
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Change fields of rule ``rule_id`` (``expression``, ``action``, ``priority``,
        ``description``, ``status``; ``None`` values are left as they are)."""
        allowed = {"expression", "action", "priority", "description", "status"}
        if unknown := set(fields) - allowed:
            raise RuleError(f"cannot edit {', '.join(sorted(unknown))} of a rule")
        given = {k: v for k, v in fields.items() if v is not None}

        def change(v: RuleSetVersion) -> list[Rule]:
            old = _find(v, rule_id)
            return [replace(old, **given) if r.id == rule_id else r for r in v.rules]

        return self.save(mode, change, author=author, comment=comment)

    def set_status(
        self, mode: str, rule_id: str, status: Status, *, author: str, comment: str = ""
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Move rule ``rule_id`` to ``status`` (draft, shadow, live, paused)."""
        return self.edit(mode, rule_id, author=author, comment=comment, status=status)

    def remove(
        self, mode: str, rule_id: str, *, author: str, comment: str = ""
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Remove rule ``rule_id``."""

        def change(v: RuleSetVersion) -> list[Rule]:
            _find(v, rule_id)
            return [r for r in v.rules if r.id != rule_id]

        return self.save(mode, change, author=author, comment=comment)

    def import_rules(
        self,
        mode: str,
        rules: Sequence[Rule],
        *,
        author: str,
        comment: str = "",
        replace_all: bool = False,
    ) -> tuple[RuleSetVersion, list[RuleDelta]]:
        """Add or update ``rules`` (a rule already stored keeps its author); with
        ``replace_all`` also remove the stored rules ``rules`` does not name. Importing the
        same rules again changes nothing."""
        given = {r.id: r for r in rules}

        def change(v: RuleSetVersion) -> list[Rule]:
            stored = {r.id: r for r in v.rules}
            merged = {} if replace_all else dict(stored)
            for rid, r in given.items():
                old = stored.get(rid)
                merged[rid] = replace(r, author=old.author if old else (r.author or author))
            return list(merged.values())

        return self.save(mode, change, author=author, comment=comment)

    # --- lists ----------------------------------------------------------------------------------

    def lists_snapshot(self, at_ms: int | None = None) -> ListsSnapshot:
        """Every list's values in force now (or at ``at_ms``) and the next expiry."""
        return lists_.snapshot(self.db, now_ms() if at_ms is None else at_ms)

    def lists(self) -> list[ListInfo]:
        """Every list with its counts of entries in force and expired."""
        return lists_.lists(self.db, now_ms())

    def entries(self, name: str, *, include_expired: bool = False) -> list[ListEntry]:
        """The entries of list ``name`` in force now (all of them with ``include_expired``)."""
        return lists_.list_entries(self.db, name, now_ms=now_ms(), include_expired=include_expired)

    def list_history(self, name: str | None = None, limit: int | None = None) -> list[ListChange]:
        """The lists' audit trail, newest first."""
        return lists_.list_changes(self.db, name, limit)

    def create_list(self, name: str, *, kind: str, description: str = "", author: str) -> None:
        """Create an empty list (audited)."""
        lists_.create_list(
            self.db,
            name,
            kind=kind,
            description=description,
            author=_author(author),
            now_ms=now_ms(),
        )

    def add_entries(
        self,
        name: str,
        values: Sequence[str],
        *,
        author: str,
        reason: str = "",
        expires_at_ms: int | None = None,
    ) -> int:
        """Add or renew entries (audited); the lists' change token after."""
        return lists_.add_entries(
            self.db,
            name,
            values,
            author=_author(author),
            reason=reason,
            now_ms=now_ms(),
            expires_at_ms=expires_at_ms,
        )

    def remove_entries(
        self, name: str, values: Sequence[str], *, author: str, reason: str = ""
    ) -> int:
        """Remove entries (audited); the lists' change token after."""
        return lists_.remove_entries(
            self.db, name, values, author=_author(author), reason=reason, now_ms=now_ms()
        )


def _find(v: RuleSetVersion, rule_id: str) -> Rule:
    for r in v.rules:
        if r.id == rule_id:
            return r
    raise RuleError(f"no rule {rule_id!r} in the {v.mode} rule set (version {v.version})")
