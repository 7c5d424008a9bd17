"""``fraudstream apikey``: the decision API's keys (create, list, revoke) in the store."""

from __future__ import annotations

import datetime as dt

import typer

from fraudstream.api import SCOPES, create_key, list_keys, parse_scopes, revoke_key
from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.dashboard import Database
from fraudstream.errors import FraudstreamError

__all__ = ["apikey_app"]

apikey_app = typer.Typer(
    help="API keys of `fraudstream serve`: who may decide, label or read.", no_args_is_help=True
)
app.add_typer(apikey_app, name="apikey")

_STORE = typer.Option(
    None, help="Store URL (default: FRAUDSTREAM_STORE__URL, else data/fraudstream.db)."
)


def _database(store_url: str | None) -> Database:
    settings = load_settings(store={"url": store_url})
    db = Database(settings.store_url(), schema=settings.store.pg_schema)
    db.migrate()
    return db


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@apikey_app.command("create")
def create(
    name: str = typer.Argument(..., help="Who uses the key, e.g. the authorisation service."),
    scopes: str = typer.Option(..., help=f"Comma-separated: {', '.join(SCOPES)}."),
    store_url: str | None = _STORE,
) -> None:
    """Create a key; its secret is printed once (only its SHA-256 is stored)."""
    try:
        db = _database(store_url)
        try:
            new = create_key(db, name, parse_scopes(scopes))
        finally:
            db.close()
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"key {new.key.key_id} ({name}: {', '.join(new.key.scopes)}); send it as "
        "`Authorization: Bearer <key>`. It is shown this once:",
        markup=False,
        highlight=False,
    )
    console.print(new.token, markup=False, highlight=False, soft_wrap=True)


@apikey_app.command("list")
def list_(store_url: str | None = _STORE) -> None:
    """Every key: id, name, scopes, created, revoked (never a secret)."""
    try:
        db = _database(store_url)
        try:
            keys = list_keys(db)
        finally:
            db.close()
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    if not keys:
        console.print(
            "no API keys; create one with: fraudstream apikey create NAME --scopes decide"
        )
        return
    for k in keys:
        state = f"revoked {_day(k.revoked_at_ms)}" if k.revoked_at_ms is not None else "active"
        console.print(
            f"{k.key_id}  {k.name:<24}  {','.join(k.scopes):<18}  created {_day(k.created_at_ms)}"
            f"  {state}",
            markup=False,
            highlight=False,
        )


@apikey_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (12 hex digits, from `apikey list`)."),
    store_url: str | None = _STORE,
) -> None:
    """Revoke a key: running APIs refuse it within FRAUDSTREAM_API__KEY_CACHE_S (5 s)."""
    try:
        db = _database(store_url)
        try:
            done = revoke_key(db, key_id)
        finally:
            db.close()
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    if not done:
        raise fail(f"no active API key {key_id!r}; see `fraudstream apikey list`")
    console.print(f"key {key_id} revoked", markup=False, highlight=False)
