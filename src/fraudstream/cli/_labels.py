"""``fraudstream labels import FILE``: chargeback and dispute files onto the labels topic."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.errors import ConfigError
from fraudstream.schema import LABEL_SOURCES, LabelMessage, encode_label, read_labels
from fraudstream.stream import Message, ensure_topics, make_producer, produce_messages

__all__ = ["labels_app"]

labels_app = typer.Typer(
    help="Labels (verdicts that arrive late): import chargeback and dispute files.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")


def _message(label: LabelMessage) -> Message:
    key = label.account if label.account is not None else label.tx_id
    return key.encode(), encode_label(label), 0


@labels_app.command("import")
def import_labels(
    file: Path = typer.Argument(..., help="CSV or Parquet, one verdict per row."),
    tx_id_column: str | None = typer.Option(None, help="Column of transaction ids [tx_id]."),
    label_column: str | None = typer.Option(
        None,
        help="Column of verdicts: 1/0, fraud/genuine, true/false, yes/no [label; without one, "
        "every row is a fraud].",
    ),
    time_column: str | None = typer.Option(
        None,
        help="Column of when each verdict became known: ms since the epoch or an ISO date/time, "
        "UTC unless given [labelled_at_ms].",
    ),
    account_column: str | None = typer.Option(
        None, help="Column of account ids [account; without one, the key is the transaction id]."
    ),
    reason_column: str | None = typer.Option(None, help="Column of free-text reasons [reason]."),
    source: str | None = typer.Option(
        None,
        help=f"Source of rows without a source column: {', '.join(LABEL_SOURCES)} "
        "[FRAUDSTREAM_LABELS__SOURCE, chargeback].",
    ),
    topic: str | None = typer.Option(None, help="Target topic [default: fraud-labels]."),
) -> None:
    """Produce a file's labels to the labels topic (key = account), idempotent on re-import.

    Each label carries label_id, a hash of tx_id, verdict, source and labelled_at_ms: importing
    the same file again produces the same ids, which a consumer drops as duplicates. Bad rows are
    skipped, named by line and column.
    """
    settings = load_settings(labels={"source": source}, topics={"labels": topic})
    given = {
        "tx_id": tx_id_column,
        "label": label_column,
        "labelled_at": time_column,
        "account": account_column,
        "reason": reason_column,
    }
    columns: dict[str, Any] = {
        **settings.labels.columns,
        **{k: v for k, v in given.items() if v is not None},
    }
    try:
        with console.status(f"reading {file.name}…"):
            found = read_labels(file, columns=columns, source=settings.labels.source)
        client = kafka_client(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    target = settings.topics.labels
    ensure_topics(client, [target], partitions=settings.kafka.partitions)
    messages = [_message(label) for label in found.labels]
    started = time.monotonic()
    done = [0]

    def next_messages(n: int) -> list[Message]:
        lo = done[0]
        done[0] = lo + n
        return messages[lo : lo + n]

    sent = produce_messages(
        make_producer(client),
        target,
        next_messages,
        chunk=1_000,
        count=len(messages),
        should_stop=stop_event().is_set,
    )
    elapsed = time.monotonic() - started
    kinds = Counter((m.source, "fraud" if m.label else "genuine") for m in found.labels)
    shown = ", ".join(f"{n:,} {s} {v}" for (s, v), n in sorted(kinds.items()))
    console.print(
        f"read {found.rows_read:,} rows of {file}; produced {sent:,} labels to [bold]{target}[/] "
        f"in {elapsed:.1f} s ({shown}); skipped {found.skipped:,}"
    )
    for problem in found.problems:
        console.print(f"  skipped: {problem}")
