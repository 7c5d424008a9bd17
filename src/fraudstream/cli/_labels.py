"""``fraudstream labels import FILE``: chargeback and dispute files onto the labels topic; and
:class:`LabelFeed`, which produces labels between a stream's transactions (simulate, replay)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from fraudstream._redact import redact
from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, FraudstreamError, KafkaError
from fraudstream.schema import LABEL_SOURCES, LabelMessage, encode_label, read_labels
from fraudstream.schema._label_files import (
    TxFacts,
    complete_labels,
    incomplete,
    known_from,
)
from fraudstream.simulate import PendingLabels, load_replay
from fraudstream.sinks import open_store
from fraudstream.stream import Message, ensure_topics, make_producer, produce_messages

__all__ = ["LabelFeed", "labels_app"]

labels_app = typer.Typer(
    help="Labels (verdicts that arrive late): import chargeback and dispute files.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")


def _key(label: LabelMessage) -> bytes:
    """A label's Kafka key: its account (the partition of the account's transactions), else
    the transaction id."""
    return (label.account if label.account is not None else label.tx_id).encode()


class LabelFeed:
    """Produces labels to ``topic`` with a stream's producer, each just before the first
    transaction at or after its label time: call :meth:`before` with each transaction's event
    time before producing it. Key = the account (else the transaction id), Kafka timestamp =
    ``labelled_at_ms``. After the producer's flush, :meth:`check` raises if one was lost.
    """

    def __init__(self, producer: Any, topic: str, pending: PendingLabels) -> None:
        self.producer = producer
        self.topic = topic
        self.pending = pending
        self.produced = 0
        self.failed = 0
        self.first_error = ""

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1
            self.first_error = self.first_error or str(err)

    def before(self, event_ms: int) -> None:
        """Produce the labels due before a transaction at ``event_ms``."""
        due = self.pending.due(event_ms)
        if due:
            self.produce(due)

    def produce(self, labels: Sequence[LabelMessage]) -> None:
        """Produce ``labels`` now, in order."""
        for label in labels:
            while True:
                try:
                    self.producer.produce(
                        self.topic,
                        key=_key(label),
                        value=encode_label(label),
                        timestamp=label.labelled_at_ms,
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.05)
            self.produced += 1

    def produce_rest(self, timeout_s: float = 30.0) -> int:
        """Produce every label still pending and wait for their delivery; how many."""
        rest = self.pending.due(2**63 - 1)
        self.produce(rest)
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise KafkaError(f"{remaining} labels undelivered to {self.topic} after {timeout_s} s")
        return len(rest)

    def check(self) -> None:
        """After the producer's flush: raise ``KafkaError`` if a label was not delivered."""
        if self.failed:
            raise KafkaError(
                f"{self.failed} labels not delivered to {self.topic} (first error: "
                f"{self.first_error})"
            )


def _file_facts(path: Path, settings: Settings, tx_ids: set[str]) -> Mapping[str, TxFacts]:
    """Facts of ``tx_ids`` from a transactions file; times only from a file's own timestamps
    (relative ones depend on how the file is replayed)."""
    source = load_replay(path, settings.replay.columns)
    facts = source.lookup(tx_ids)
    if source.file.relative_time:
        return {i: (a, c, None) for i, (a, c, _) in facts.items()}
    return facts


def _store_facts(settings: Settings, tx_ids: set[str]) -> tuple[Mapping[str, TxFacts], str]:
    """Facts of ``tx_ids`` from the store, and why none when it cannot give them (a SQLite
    file that does not exist is not created)."""
    url = settings.store_url()
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return {}, f"no store at {url}"
    try:
        store = open_store(url, schema=settings.store.pg_schema)
        store.open()
        try:
            return store.lookup_transactions(sorted(tx_ids)), ""
        finally:
            store.close()
    except FraudstreamError as exc:
        return {}, f"store {redact(url)} unavailable: {exc}"


def _complete(
    labels: list[LabelMessage], transactions: Path | None, settings: Settings
) -> tuple[list[LabelMessage], str]:
    """``labels`` completed with their transactions' facts, and a line saying from where."""
    wanted = {m.tx_id for m in labels if incomplete(m)}
    if not wanted:
        return labels, ""
    if transactions is not None:
        with console.status(f"looking {len(wanted):,} transactions up in {transactions.name}…"):
            facts, where, why = _file_facts(transactions, settings, wanted), transactions.name, ""
    else:
        where = f"the store {redact(settings.store_url())}"
        with console.status(f"looking {len(wanted):,} transactions up in {where}…"):
            facts, why = _store_facts(settings, wanted)
    done, gained = complete_labels(labels, facts)
    left = sum(incomplete(m) for m in done)
    line = f"completed {gained:,} labels from {where}" if not why else f"not completed: {why}"
    if left:
        line += (
            f"; {left:,} still lack their account, counterparty or transaction time (the "
            "detector looks them up when their transactions arrive)"
        )
    return done, line


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
        None, help="Column of the transactions' accounts (senders) [account]."
    ),
    counterparty_column: str | None = typer.Option(
        None, help="Column of the transactions' receivers, merchants or terminals [counterparty]."
    ),
    tx_time_column: str | None = typer.Option(
        None, help="Column of the transactions' event times, like --time-column [tx_time_ms]."
    ),
    reason_column: str | None = typer.Option(None, help="Column of free-text reasons [reason]."),
    source: str | None = typer.Option(
        None,
        help=f"Source of rows without a source column: {', '.join(LABEL_SOURCES)} "
        "[FRAUDSTREAM_LABELS__SOURCE, chargeback].",
    ),
    transactions: Path | None = typer.Option(
        None,
        help="Transactions file (any format replay reads) to take missing accounts, "
        "counterparties and transaction times from (default: the store, if it has them).",
    ),
    store_url: str | None = typer.Option(
        None, help="Store to look transactions up in [FRAUDSTREAM_STORE__URL, data/fraudstream.db]."
    ),
    keep_times: bool = typer.Option(
        False,
        "--keep-times",
        help="Keep the file's label times even when they are in the past (a backfill before any "
        "detector runs, a training file). Default: a label dated before now is published as "
        "known now, when the bank learns it.",
    ),
    topic: str | None = typer.Option(None, help="Target topic (default: fraud-labels)."),
) -> None:
    """Produce a file's labels to the labels topic (key = account), idempotent on re-import.

    Each label carries its transaction's account, counterparty and event time: from the file's
    columns, else from --transactions FILE, else from the store. A label dated before now is
    published with labelled_at_ms = now (a detector that is running could not have known it
    earlier, and its features stay reproducible); --keep-times keeps the file's times. Each label
    carries label_id, a hash of tx_id, verdict, source and labelled_at_ms: importing with
    --keep-times again produces the same ids, which a consumer drops; a re-import without it
    gives the same verdicts a later time, and a consumer keeps the earliest. Bad rows are
    skipped, named by line and column.
    """
    settings = load_settings(
        labels={"source": source}, topics={"labels": topic}, store={"url": store_url}
    )
    given = {
        "tx_id": tx_id_column,
        "label": label_column,
        "labelled_at": time_column,
        "account": account_column,
        "counterparty": counterparty_column,
        "tx_time": tx_time_column,
        "reason": reason_column,
    }
    columns: dict[str, Any] = {
        **settings.labels.columns,
        **{k: v for k, v in given.items() if v is not None},
    }
    try:
        with console.status(f"reading {file.name}…"):
            found = read_labels(file, columns=columns, source=settings.labels.source)
        labels, completed = _complete(found.labels, transactions, settings)
        client = kafka_client(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    now_ms = time.time_ns() // 1_000_000
    moved = 0
    if not keep_times:
        labels, moved = known_from(labels, now_ms)
    target = settings.topics.labels
    ensure_topics(client, [target], partitions=settings.kafka.partitions)
    messages: list[Message] = [(_key(m), encode_label(m), 0) for m in labels]
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
    kinds = Counter((m.source, "fraud" if m.label else "genuine") for m in labels)
    shown = ", ".join(f"{n:,} {s} {v}" for (s, v), n in sorted(kinds.items()))
    console.print(
        f"read {found.rows_read:,} rows of {file}; produced {sent:,} labels to [bold]{target}[/] "
        f"in {elapsed:.1f} s ({shown}); skipped {found.skipped:,}"
    )
    if completed:
        console.print(f"  {completed}")
    if moved:
        console.print(
            f"  moved {moved:,} labels dated before now to now (labelled_at_ms {now_ms}); "
            "--keep-times keeps the file's times"
        )
    for problem in found.problems:
        console.print(f"  skipped: {problem}")
