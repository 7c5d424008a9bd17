"""Named lists in the store: entries with an optional expiry, every change logged.

A list has a name, a kind (``account``, ``merchant``, ``country`` …: free text) and a
description; an entry a value, who added it and when, an optional expiry and a reason. An entry
whose ``expires_at_ms`` is at or before "now" no longer counts. Every change (create, add,
remove) is a row of ``rule_list_changes`` whose ``seq`` grows by one per change: the lists'
change token. Functions of a :class:`~fraudstream.sinks._sqlconn.SqlConnection`; the SQL is the
same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fraudstream.rules import RuleError
from fraudstream.sinks._sqlconn import SqlConnection, Tx

__all__ = [
    "ListChange",
    "ListEntry",
    "ListInfo",
    "ListsSnapshot",
    "add_entries",
    "create_list",
    "list_changes",
    "list_entries",
    "list_names",
    "lists",
    "lists_seq",
    "remove_entries",
    "snapshot",
]

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_MAX_VALUE_CHARS: Final = 256
_MAX_TEXT_CHARS: Final = 500
_LOCK: Final = "rule_list_changes"
_ENTRY_COLUMNS: Final = "list_name, value, added_by, added_at_ms, expires_at_ms, reason"
_ACTIVE: Final = "(expires_at_ms IS NULL OR expires_at_ms > ?)"
_LOG: Final = (
    "INSERT INTO rule_list_changes "
    "(seq, list_name, value, change, author, at_ms, expires_at_ms, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class ListInfo:
    """A list, with its entries in force now and those expired (still kept for the record)."""

    name: str
    kind: str
    description: str
    created_by: str
    created_at_ms: int
    entries: int
    expired: int


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One value of a list."""

    list_name: str
    value: str
    added_by: str
    added_at_ms: int
    expires_at_ms: int | None
    reason: str

    def active(self, now_ms: int) -> bool:
        """Whether the entry counts at ``now_ms``."""
        return self.expires_at_ms is None or self.expires_at_ms > now_ms


@dataclass(frozen=True, slots=True)
class ListChange:
    """One row of the lists' audit trail; ``value`` is ``None`` for a list's creation."""

    seq: int
    list_name: str
    value: str | None
    change: str
    author: str
    at_ms: int
    expires_at_ms: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ListsSnapshot:
    """The lists in force at ``at_ms``: ``lists`` (name → values, every list, empty ones too)
    as of change ``seq``; reload when the change token moves or at ``next_expiry_ms`` (the
    earliest expiry still ahead, ``None`` if none)."""

    lists: Mapping[str, frozenset[str]]
    seq: int
    at_ms: int
    next_expiry_ms: int | None


def _name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise RuleError(
            f"bad list name {name!r}: 1-64 letters, digits, _ . : -, "
            "starting with a letter or digit"
        )
    return name


def _text(what: str, value: str) -> str:
    if len(value) > _MAX_TEXT_CHARS:
        raise RuleError(f"{what} is {len(value)} characters; at most {_MAX_TEXT_CHARS}")
    return value


def _values(values: Sequence[str]) -> list[str]:
    if not values:
        raise RuleError("no value given")
    for v in values:
        if not v or len(v) > _MAX_VALUE_CHARS:
            raise RuleError(f"list value {v[:40]!r} must have 1 to {_MAX_VALUE_CHARS} characters")
    return list(dict.fromkeys(values))


def _seq(tx: Tx) -> int:
    return int(tx.rows("SELECT max(seq) FROM rule_list_changes")[0][0] or 0)


def _log(
    tx: Tx,
    name: str,
    values: Sequence[str],
    change: str,
    author: str,
    now_ms: int,
    expires_at_ms: int | None,
    reason: str,
) -> int:
    """Log one change per value; the change token after them."""
    seq = _seq(tx)
    rows = [
        (seq + i, name, v, change, author, now_ms, expires_at_ms, reason)
        for i, v in enumerate(values, start=1)
    ]
    tx.execute_many(_LOG, rows)
    return seq + len(values)


def _must_exist(tx: Tx, name: str) -> None:
    if not tx.rows("SELECT 1 FROM rule_lists WHERE name = ?", (name,)):
        known = ", ".join(r[0] for r in tx.rows("SELECT name FROM rule_lists ORDER BY name"))
        raise RuleError(f"no list {name!r} (lists: {known or 'none yet'})")


def create_list(
    db: SqlConnection, name: str, *, kind: str, description: str, author: str, now_ms: int
) -> None:
    """Create an empty list; :class:`RuleError` if the name is taken or malformed."""
    _name(name)
    row = (_text("kind", kind), _text("description", description), _text("author", author))
    with db.transaction(f"create list {name!r}", _LOCK) as tx:
        if tx.rows("SELECT 1 FROM rule_lists WHERE name = ?", (name,)):
            raise RuleError(f"list {name!r} exists already")
        tx.execute(
            "INSERT INTO rule_lists (name, kind, description, created_by, created_at_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, *row, now_ms),
        )
        tx.execute(_LOG, (_seq(tx) + 1, name, None, "create", author, now_ms, None, description))


def add_entries(
    db: SqlConnection,
    name: str,
    values: Sequence[str],
    *,
    author: str,
    reason: str,
    now_ms: int,
    expires_at_ms: int | None = None,
) -> int:
    """Add (or renew: new expiry, reason and author) ``values``; the change token after."""
    vals = _values(values)
    _text("reason", reason)
    if expires_at_ms is not None and expires_at_ms <= now_ms:
        raise RuleError("the expiry is not in the future: nothing added")
    with db.transaction(f"add to list {name!r}", _LOCK) as tx:
        _must_exist(tx, name)
        tx.execute_many(
            "DELETE FROM rule_list_entries WHERE list_name = ? AND value = ?",
            [(name, v) for v in vals],
        )
        tx.execute_many(
            f"INSERT INTO rule_list_entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            [(name, v, author, now_ms, expires_at_ms, reason) for v in vals],
        )
        return _log(tx, name, vals, "add", author, now_ms, expires_at_ms, reason)


def remove_entries(
    db: SqlConnection, name: str, values: Sequence[str], *, author: str, reason: str, now_ms: int
) -> int:
    """Remove ``values`` (all of them are in the list, expired or not, or nothing changes);
    the change token after."""
    vals = _values(values)
    _text("reason", reason)
    with db.transaction(f"remove from list {name!r}", _LOCK) as tx:
        _must_exist(tx, name)
        present = {
            r[0]
            for r in tx.rows("SELECT value FROM rule_list_entries WHERE list_name = ?", (name,))
        }
        missing = [v for v in vals if v not in present]
        if missing:
            shown = ", ".join(map(repr, missing[:5]))
            raise RuleError(f"list {name!r} has no {shown}: nothing removed")
        tx.execute_many(
            "DELETE FROM rule_list_entries WHERE list_name = ? AND value = ?",
            [(name, v) for v in vals],
        )
        return _log(tx, name, vals, "remove", author, now_ms, None, reason)


def lists(db: SqlConnection, now_ms: int) -> list[ListInfo]:
    """Every list by name, with its counts of entries in force and expired at ``now_ms``."""
    rows = db.rows(
        "SELECT l.name, l.kind, l.description, l.created_by, l.created_at_ms, "
        "sum(CASE WHEN e.value IS NOT NULL AND (e.expires_at_ms IS NULL "
        "OR e.expires_at_ms > ?) THEN 1 ELSE 0 END), "
        "sum(CASE WHEN e.expires_at_ms <= ? THEN 1 ELSE 0 END) "
        "FROM rule_lists l LEFT JOIN rule_list_entries e ON e.list_name = l.name "
        "GROUP BY l.name, l.kind, l.description, l.created_by, l.created_at_ms ORDER BY l.name",
        (now_ms, now_ms),
    )
    return [
        ListInfo(name, kind, desc, by, int(at), int(active or 0), int(expired or 0))
        for name, kind, desc, by, at, active, expired in rows
    ]


def list_names(tx: Tx | SqlConnection) -> frozenset[str]:
    """The names of the lists that exist."""
    return frozenset(r[0] for r in tx.rows("SELECT name FROM rule_lists"))


def list_entries(
    db: SqlConnection, name: str, *, now_ms: int, include_expired: bool = False
) -> list[ListEntry]:
    """The entries of list ``name`` by value (those in force at ``now_ms`` unless
    ``include_expired``); :class:`RuleError` if there is no such list."""
    _name(name)
    if not db.rows("SELECT 1 FROM rule_lists WHERE name = ?", (name,)):
        raise RuleError(f"no list {name!r}")
    where = "" if include_expired else f" AND {_ACTIVE}"
    rows = db.rows(
        f"SELECT {_ENTRY_COLUMNS} FROM rule_list_entries WHERE list_name = ?{where} ORDER BY value",
        (name,) if include_expired else (name, now_ms),
    )
    return [ListEntry(*r) for r in rows]


def list_changes(
    db: SqlConnection, name: str | None = None, limit: int | None = None
) -> list[ListChange]:
    """The lists' audit trail, newest first (of list ``name`` if given)."""
    where, params = ("WHERE list_name = ? ", (name,)) if name is not None else ("", ())
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = db.rows(
        "SELECT seq, list_name, value, change, author, at_ms, expires_at_ms, reason "
        f"FROM rule_list_changes {where}ORDER BY seq DESC{tail}",
        params,
    )
    return [ListChange(*r) for r in rows]


def lists_seq(db: SqlConnection) -> int:
    """The lists' change token: the number of the latest change (0 before any)."""
    return int(db.rows("SELECT max(seq) FROM rule_list_changes")[0][0] or 0)


def snapshot(db: SqlConnection, now_ms: int) -> ListsSnapshot:
    """Every list's values in force at ``now_ms`` and when the next one expires."""
    seq = lists_seq(db)  # first: a change landing meanwhile moves the token again
    found: dict[str, set[str]] = {name: set() for name in list_names(db)}
    for name, value in db.rows(
        f"SELECT list_name, value FROM rule_list_entries WHERE {_ACTIVE}", (now_ms,)
    ):
        found.setdefault(name, set()).add(value)
    nxt = db.rows(
        "SELECT min(expires_at_ms) FROM rule_list_entries WHERE expires_at_ms > ?", (now_ms,)
    )[0][0]
    return ListsSnapshot(
        {k: frozenset(v) for k, v in found.items()},
        seq,
        now_ms,
        None if nxt is None else int(nxt),
    )
