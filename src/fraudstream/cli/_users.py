"""``fraudstream users``: the dashboard's accounts (add, list, remove) in the store."""

from __future__ import annotations

import sys

import typer

from fraudstream._redact import redact
from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.config import Settings
from fraudstream.dashboard import Database
from fraudstream.dashboard._access import ROLES, add_user, list_users, remove_user
from fraudstream.errors import FraudstreamError

__all__ = ["create_account"]

#: Who the audit log names for changes made on the command line.
CLI_ACTOR = "cli"

users_app = typer.Typer(
    help="Dashboard accounts: who may sign in, as viewer, analyst or admin.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")

_STORE = typer.Option(
    None, help="Store URL (default: FRAUDSTREAM_STORE__URL, else data/fraudstream.db)."
)


def _database(settings: Settings) -> Database:
    db = Database(settings.store_url(), schema=settings.store.pg_schema)
    db.migrate()
    return db


def create_account(settings: Settings, name: str, role: str, password: str | None) -> None:
    """Add an account to the settings' store (migrating it first); ``FraudstreamError`` if not."""
    db = _database(settings)
    try:
        add_user(db, name, role, password, actor=CLI_ACTOR)
    finally:
        db.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = str(typer.prompt("Password", hide_input=True))
    if str(typer.prompt("Repeat the password", hide_input=True)) != first:
        raise fail("the two passwords differ; nothing changed")
    return first


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="The user name (what the proxy header sends, if used)."),
    role: str = typer.Option(..., help=f"One of: {', '.join(ROLES)}."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    no_password: bool = typer.Option(
        False,
        "--no-password",
        help="No password: signs in only through the proxy header (dashboard.user_header).",
    ),
    store_url: str | None = _STORE,
) -> None:
    """Create a dashboard account; the password is asked twice (hidden) and stored hashed."""
    settings = load_settings(store={"url": store_url})
    if no_password and password_stdin:
        raise fail("--no-password and --password-stdin exclude each other")
    password = None if no_password else _password(password_stdin)
    try:
        create_account(settings, name, role, password)
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    how = "the proxy header only" if password is None else "a password"
    console.print(
        f"user {name} added as {role} (signs in with {how}) in {redact(settings.store_url())}",
        markup=False,
        highlight=False,
    )


@users_app.command("list")
def list_(store_url: str | None = _STORE) -> None:
    """The accounts: name, role, how they sign in."""
    settings = load_settings(store={"url": store_url})
    try:
        db = _database(settings)
        try:
            accounts = list_users(db)
        finally:
            db.close()
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    if not accounts:
        console.print("no dashboard users; create the first admin with:")
        console.print("  fraudstream users add admin --role admin", markup=False)
        return
    width = max(len(a.name) for a in accounts)
    for a in accounts:
        how = "password" if a.has_password else "proxy header"
        console.print(f"{a.name:<{width}}  {a.role:<7}  {how}", markup=False, highlight=False)


@users_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="The user name."),
    store_url: str | None = _STORE,
) -> None:
    """Delete a dashboard account (its open sessions lose their rights at once)."""
    settings = load_settings(store={"url": store_url})
    try:
        db = _database(settings)
        try:
            remove_user(db, name, actor=CLI_ACTOR)
        finally:
            db.close()
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    console.print(f"user {name} removed", markup=False, highlight=False)
