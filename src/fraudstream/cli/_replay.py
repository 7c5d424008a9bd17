"""``fraudstream replay FILE``: a CSV/Parquet file into Kafka in event-time order, paced; with its
labels file, the labels too, each just before the first transaction at or after its time."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.cli._labels import LabelFeed
from fraudstream.cli._schema_opts import SchemaOption, parse_pairs, resolve_schema
from fraudstream.schema import LabelMessage, read_labels
from fraudstream.schema._declare import SchemaDeclaration
from fraudstream.schema._files import Start, read_transactions, start_before
from fraudstream.simulate import PendingLabels, RateLimiter, ReplayFile, SpeedupPacer, labels_path
from fraudstream.stream import Message, ensure_topics, make_producer, produce_messages

__all__ = ["parse_start", "progress_bar", "replay"]


def progress_bar() -> Progress:
    """A rich progress bar with a rate column, for long writes and replays."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _Cursor:
    """Reads a :class:`ReplayFile` forward, ``n`` messages at a time."""

    def __init__(self, file: ReplayFile) -> None:
        self.file = file
        self.pos = 0

    def __call__(self, n: int) -> list[Message]:
        lo, hi = self.pos, min(self.pos + n, len(self.file))
        self.pos = hi
        times = self.file.event_time_ms[lo:hi].tolist()
        pairs = self.file.messages(lo, hi)
        return [(k, v, t) for (k, v), t in zip(pairs, times, strict=True)]


def parse_start(text: str, now_ms: int) -> Start:
    """``--start``: ``auto``, ``now``, or an ISO date / date-time (UTC unless it says otherwise)."""
    if text == "auto":
        return start_before(now_ms)
    if text == "now":
        return now_ms
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected auto, now or an ISO date/time such as 2024-05-01 or 2024-05-01T08:00Z, "
            f"got {text!r}",
            param_hint="--start",
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def _parse_columns(pairs: list[str]) -> dict[str, str]:
    """``--column FIELD=COLUMN`` values as a mapping (``evaluate`` and ``score`` use it)."""
    return parse_pairs(pairs, "--column")


def _read(path: Path, schema: SchemaDeclaration, start: Start) -> ReplayFile:
    """``path`` read with ``schema``, its relative times (if any) from ``start``, which
    :attr:`ReplayFile.offset_ms` then records (as ``simulate.load_replay`` does)."""
    used: list[int] = []

    def start_of(span_ms: int) -> int:  # called only when some times are relative
        used.append(start if isinstance(start, int) else start(span_ms))
        return used[-1]

    return ReplayFile(read_transactions(path, schema=schema, start_ms=start_of), sum(used[-1:]))


def _labels_of(
    source: ReplayFile, given: Path | None, skip: bool, columns: dict[str, Any]
) -> tuple[list[LabelMessage], Path | None]:
    """The labels to replay with ``source`` (in replay time) and their file: ``given``, else
    the file beside it (``FILE.labels.parquet``) if there is one."""
    if skip:
        return [], None
    where = given if given is not None else labels_path(source.path)
    if not where.is_file():
        if given is not None:
            raise fail(f"labels file {given} not found")
        return [], None
    found = read_labels(where, columns=columns if given is not None else None)
    return source.shift_labels(found.labels), where


@app.command()
def replay(
    file: Path = typer.Argument(..., help="CSV or Parquet: PaySim, the handbook's, or ours."),
    rate: float | None = typer.Option(None, help="Transactions per second (token bucket)."),
    speedup: float | None = typer.Option(
        None, help="Event time runs this many times faster than real time (e.g. 3600)."
    ),
    count: int | None = typer.Option(None, help="Stop after this many transactions."),
    schema: SchemaOption = None,
    start: str = typer.Option(
        "auto",
        help="Event time of PaySim's step 0 (TX_TIME_SECONDS 0) for a file without timestamps: "
        "an ISO date/time (UTC unless given), 'now', or 'auto' = midnight UTC whole days before "
        "today, so the file ends before today and step s is at hour s % 24 of its day, as in "
        "train. A file's own timestamps (eventTimeMs, TX_DATETIME) are kept.",
    ),
    topic: str | None = typer.Option(None, help="Target topic (default: transactions)."),
    labels: Path | None = typer.Option(
        None,
        help="Labels file to replay with the transactions (columns as labels import reads) "
        "(default: FILE.labels.parquet / .csv beside FILE, if there is one).",
    ),
    no_labels: bool = typer.Option(False, "--no-labels", help="Replay no labels."),
    labels_topic: str | None = typer.Option(
        None, help="Topic of the labels (default: fraud-labels)."
    ),
) -> None:
    """Stream a file into Kafka in event-time order (key = account), at --rate or --speedup.

    Columns are read as the schema declaration says (--schema, FRAUDSTREAM_SCHEMA__FILE;
    docs/your-data.md), others by their names; each record carries the canonical fields.

    With a labels file (FILE.labels.parquet beside FILE, or --labels), each label goes to the
    labels topic (key = account, Kafka timestamp = label time) just before the first transaction
    at or after its label time, shifted like the transactions: a file whose times are relative
    (PaySim's step, TX_TIME_SECONDS) has its label times relative too, and --start moves both.
    Labels due after the last transaction follow it when the whole file was replayed.
    """
    if rate is not None and speedup is not None:
        raise fail("give --rate or --speedup, not both")
    settings = load_settings(topics={"transactions": topic, "labels": labels_topic})
    declaration = resolve_schema(schema, settings)
    with console.status(f"reading and ordering {file.name}…"):
        source = _read(file, declaration, parse_start(start, int(time.time() * 1000)))
        found, labels_file = _labels_of(source, labels, no_labels, dict(settings.labels.columns))
    total = len(source) if count is None else min(count, len(source))
    client = kafka_client(settings)
    target = settings.topics.transactions
    ensure_topics(
        client,
        [target] + ([settings.topics.labels] if labels_file else []),
        partitions=settings.kafka.partitions,
    )
    limiter = RateLimiter(rate or 0.0)
    pacer = SpeedupPacer(speedup) if speedup else None
    pace = f"{rate:,.0f} tx/s" if rate else f"x{speedup:g} event time" if speedup else "max speed"
    console.print(
        f"replaying {total:,} {source.format} rows of {file} to [bold]{target}[/] ({pace}), "
        f"event time {_iso(int(source.event_time_ms[0]))} to {_iso(int(source.event_time_ms[-1]))}"
        + (" (from --start)" if source.file.relative_time else " (the file's own)")
    )
    if labels_file is not None:
        console.print(
            f"with {len(found):,} labels of {labels_file} to [bold]{settings.topics.labels}[/]"
        )
    stop = stop_event()
    producer = make_producer(client)
    pending = PendingLabels()
    pending.add(found)
    feed = LabelFeed(producer, settings.topics.labels, pending) if labels_file else None

    def before(event_ms: int) -> None:
        if pacer is not None:
            pacer.wait_until(event_ms)
        if feed is not None:
            feed.before(event_ms)

    started = time.monotonic()
    with progress_bar() as bar:
        task = bar.add_task("replay", total=total, rate="")

        def progress(done: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} tx/s")

        sent = produce_messages(
            producer,
            target,
            _Cursor(source),
            chunk=max(1, int(rate // 50)) if rate else 1_000,
            count=total,
            acquire=limiter.acquire,
            wait_until=before if pacer or feed else None,
            should_stop=stop.is_set,
            on_progress=progress,
        )
    elapsed = time.monotonic() - started
    skipped = source.file.skipped
    console.print(
        f"replayed {sent:,} transactions in {elapsed:.1f} s ({sent / elapsed:,.0f} tx/s)"
        + (f"; skipped {skipped:,} bad {_rows(skipped)} (see the warning above)" if skipped else "")
    )
    if feed is not None:
        _finish_labels(feed, whole=sent == len(source))


def _finish_labels(feed: LabelFeed, *, whole: bool) -> None:
    """After the transactions: the labels due later follow them if the whole file went out."""
    after = feed.produce_rest() if whole else 0
    feed.check()
    left = len(feed.pending)
    console.print(
        f"replayed {feed.produced:,} labels to [bold]{feed.topic}[/]"
        + (f" ({after:,} due after the last transaction, produced after it)" if after else "")
        + (f"; {left:,} not yet due were left out (the replay stopped early)" if left else "")
    )
