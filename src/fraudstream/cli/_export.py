"""``fraudstream export DEST``: the store's transactions, alerts and labels as daily files."""

from __future__ import annotations

import datetime as dt

import typer

from fraudstream._redact import redact
from fraudstream.cli._app import app, console, fail, load_settings, stop_event
from fraudstream.dashboard import Database
from fraudstream.errors import FraudstreamError
from fraudstream.export import TABLES, ExportRun, export_days, open_target

__all__ = ["export"]


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r} is not a date (YYYY-MM-DD)", code=2) from None


@app.command()
def export(
    dest: str = typer.Argument(..., help="A directory, or s3://bucket/prefix."),
    tables: str = typer.Option(
        "transactions,alerts,labels",
        "--tables",
        help="Comma-separated: transactions,alerts,labels.",
    ),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    since: str | None = typer.Option(
        None, "--since", help="First UTC day (YYYY-MM-DD); the days asked for are rewritten."
    ),
    until: str | None = typer.Option(None, "--until", help="Last UTC day (inclusive)."),
    follow: bool = typer.Option(
        False, "--follow", help="Keep exporting new and open days every --interval seconds."
    ),
    interval_s: float = typer.Option(60.0, "--interval", help="Seconds between --follow rounds."),
    close_after_s: float = typer.Option(
        3600.0,
        "--close-after",
        help="A day is closed (not exported again) once the store holds rows this many seconds "
        "past its end.",
    ),
    store_url: str | None = typer.Option(
        None, "--store-url", help="Store to export (default: the configured one)."
    ),
    s3_endpoint_url: str | None = typer.Option(
        None,
        "--s3-endpoint-url",
        envvar="FRAUDSTREAM_EXPORT_S3_ENDPOINT_URL",
        help="An S3-compatible endpoint (MinIO, a bank's own); credentials from the AWS chain.",
    ),
) -> None:
    """Export the store by UTC day: one Parquet or CSV file per table and day, resumable."""
    names = [t.strip() for t in tables.split(",") if t.strip()]
    unknown = [t for t in names if t not in TABLES]
    if unknown or not names:
        raise fail(f"unknown table(s) {unknown}; choose from {sorted(TABLES)}", code=2)
    if fmt not in ("parquet", "csv"):
        raise fail(f"--format {fmt!r}: use parquet or csv", code=2)
    first, last = _date(since, "--since"), _date(until, "--until")
    settings = load_settings(store={"url": store_url})
    db = Database(settings.store_url(), schema=settings.store.pg_schema)
    stop = stop_event()
    try:
        target = open_target(dest, s3_endpoint_url=s3_endpoint_url)
        while True:
            run = export_days(
                db,
                target,
                tables=names,
                fmt=fmt,  # type: ignore[arg-type]  # checked above
                since=first,
                until=last,
                close_after_ms=int(close_after_s * 1000),
                should_stop=stop.is_set,
            )
            _summary(run, target.describe())
            if not follow or stop.wait(interval_s):
                break
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    finally:
        db.close()
    console.print(f"store: {redact(settings.store_url())}")


def _summary(run: ExportRun, where: str) -> None:
    for d in run.written:
        state = "closed" if d.closed else "open"
        console.print(
            f"{d.table:<12} {d.day}  {d.rows:>10,} rows  {d.bytes / 1e6:>9.2f} MB  "
            f"{d.seconds:6.1f} s  {state}  {d.path}",
            soft_wrap=True,
        )
    console.print(
        f"exported {run.rows:,} row(s) in {len(run.written)} file(s) to {where}; "
        f"{run.skipped} closed day(s) already there",
        soft_wrap=True,
    )
