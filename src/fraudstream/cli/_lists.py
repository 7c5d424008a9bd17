"""``fraudstream lists``: named lists of values (accounts, merchants, countries …) that rules
look up with ``x in list("name")``; entries may expire. Every change is audited and reaches
running detectors through the store's change token (docs/rules.md)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

import typer

from fraudstream.cli._app import app
from fraudstream.cli._rulestore import AUTHOR, STORE, author_of, opened, refuse, say, when

__all__ = ["lists_app", "parse_ttl_ms"]

lists_app = typer.Typer(
    help="Named lists for rules: mules, trusted accounts, countries … with optional expiry.",
    no_args_is_help=True,
)
app.add_typer(lists_app, name="lists")

_TTL: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_REASON = typer.Option("", "--reason", help="Why (kept in the audit trail).")


def parse_ttl_ms(text: str) -> int:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` → milliseconds; ``ValueError`` otherwise."""
    m = _TTL.fullmatch(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--ttl {text!r}: write a positive number and a unit s, m, h, d or w")
    return round(float(m.group(1)) * _UNIT_MS[m.group(2)])


def _expiry_ms(expires: str | None, ttl: str | None) -> int | None:
    if expires is not None and ttl is not None:
        raise refuse("--expires and --ttl exclude each other")
    if ttl is not None:
        try:
            return time.time_ns() // 1_000_000 + parse_ttl_ms(ttl)
        except ValueError as exc:
            raise refuse(str(exc)) from None
    if expires is None:
        return None
    try:
        at = datetime.fromisoformat(expires)
    except ValueError:
        raise refuse(f"--expires {expires!r}: write an ISO time, e.g. 2027-01-31T18:00") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return round(at.timestamp() * 1000)


@lists_app.command("create")
def create(
    name: str = typer.Argument(..., help='The list\'s name, as rules write it: list("name").'),
    kind: str = typer.Option("value", help="What it holds: account, merchant, country …"),
    description: str = typer.Option("", help="What the list is for."),
    author: str | None = AUTHOR,
    store_url: str | None = STORE,
) -> None:
    """Create an empty list."""
    who = author_of(author)
    with opened(store_url) as store:
        store.create_list(name, kind=kind, description=description, author=who)
    say(f"list {name} created ({kind})")


@lists_app.command("add")
def add(
    name: str = typer.Argument(..., help="The list."),
    values: list[str] = typer.Argument(..., help="One or more values."),
    expires: str | None = typer.Option(
        None, "--expires", help="When the entries stop counting: an ISO time (UTC if no zone)."
    ),
    ttl: str | None = typer.Option(None, "--ttl", help="Or how long they count: 30m, 12h, 7d."),
    reason: str = _REASON,
    author: str | None = AUTHOR,
    store_url: str | None = STORE,
) -> None:
    """Add values (an existing one is renewed with the new expiry and reason)."""
    expires_at_ms = _expiry_ms(expires, ttl)
    who = author_of(author)
    with opened(store_url) as store:
        seq = store.add_entries(
            name, values, author=who, reason=reason, expires_at_ms=expires_at_ms
        )
    until = "" if expires_at_ms is None else f", until {when(expires_at_ms)}"
    say(f"{len(set(values))} value(s) added to list {name}{until} (change {seq})")


@lists_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="The list."),
    values: list[str] = typer.Argument(..., help="One or more values, all in the list."),
    reason: str = _REASON,
    author: str | None = AUTHOR,
    store_url: str | None = STORE,
) -> None:
    """Remove values (all must be in the list, or nothing is removed)."""
    who = author_of(author)
    with opened(store_url) as store:
        seq = store.remove_entries(name, values, author=who, reason=reason)
    say(f"{len(set(values))} value(s) removed from list {name} (change {seq})")


@lists_app.command("show")
def show(
    name: str = typer.Argument(..., help="The list."),
    include_expired: bool = typer.Option(False, "--all", help="Also the expired entries."),
    history: bool = typer.Option(False, "--history", help="Its audit trail instead."),
    store_url: str | None = STORE,
) -> None:
    """The entries of a list in force now: value, expiry, who added it, when, why."""
    with opened(store_url) as store:
        if history:
            store.entries(name)  # refuses an unknown list
            for c in store.list_history(name):
                until = "" if c.expires_at_ms is None else f" until {when(c.expires_at_ms)}"
                value = "" if c.value is None else f" {c.value}"
                say(f"{c.seq}  {when(c.at_ms)}  {c.author}  {c.change}{value}{until}  {c.reason}")
            return
        entries = store.entries(name, include_expired=include_expired)
    if not entries:
        say(f"list {name} has no entries in force")
        return
    width = max(len(e.value) for e in entries)
    for e in entries:
        say(
            f"{e.value:<{width}}  expires {when(e.expires_at_ms):<20}  "
            f"{e.added_by}  {when(e.added_at_ms)}  {e.reason}".rstrip()
        )


@lists_app.command("list")
def list_(store_url: str | None = STORE) -> None:
    """Every list: name, kind, entries in force, expired entries, description."""
    with opened(store_url) as store:
        found = store.lists()
    if not found:
        say("no lists yet; create one with: fraudstream lists create NAME --kind account")
        return
    width = max(len(i.name) for i in found)
    for i in found:
        say(
            f"{i.name:<{width}}  {i.kind:<10}  {i.entries:>7} in force  {i.expired:>5} expired  "
            f"{i.description}".rstrip()
        )
