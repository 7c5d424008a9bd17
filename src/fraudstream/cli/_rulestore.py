"""What ``fraudstream rules`` and ``fraudstream lists`` share: the store, the author, output,
and errors as one line (a refused rule or list change exits 2, a store failure 1)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer
from rich.markup import escape

from fraudstream._redact import redact
from fraudstream.cli._app import console, err_console, load_settings
from fraudstream.errors import FraudstreamError
from fraudstream.rules import RuleError
from fraudstream.sinks import RuleStore

__all__ = ["AUTHOR", "COMMENT", "MODE", "STORE", "author_of", "opened", "refuse", "say", "when"]

STORE = typer.Option(
    None,
    "--store-url",
    help="Store URL (default: FRAUDSTREAM_STORE__URL, else data/fraudstream.db).",
)
MODE = typer.Option(
    "pre_auth", "--mode", help="The rule set's mode, the bundle's: pre_auth, post_tx or card."
)
AUTHOR = typer.Option(None, "--author", help="Who makes the change [the environment's user].")
COMMENT = typer.Option("", "--comment", "-m", help="Why: kept with the version and the audit.")


def say(text: str) -> None:
    """One line (or several) on stdout, as written: no markup, no wrapping."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _error(message: str, code: int) -> typer.Exit:
    first = message.splitlines()[0] if message else "failed"
    err_console.print(f"[bold red]error:[/] {escape(redact(first))}", soft_wrap=True)
    return typer.Exit(code)


def author_of(author: str | None) -> str:
    """``author``, else the environment's user name."""
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise _error("cannot tell who you are: pass --author NAME", 2) from exc


@contextmanager
def opened(store_url: str | None) -> Iterator[RuleStore]:
    """The settings' store, migrated and open; library errors end the command in one line
    (exit 2 for a refused rule, list or file, 1 for the store)."""
    settings = load_settings(store={"url": store_url})
    try:
        with RuleStore(settings.store_url(), schema=settings.store.pg_schema) as store:
            yield store
    except RuleError as exc:
        raise _error(str(exc), 2) from None
    except FraudstreamError as exc:
        raise _error(str(exc), 1) from None


def refuse(message: str) -> typer.Exit:
    """A refused command line (exit 2), e.g. options that exclude each other."""
    return _error(message, 2)


def when(ms: int | None) -> str:
    """``2026-12-06 21:14:03Z``, or ``never``."""
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
