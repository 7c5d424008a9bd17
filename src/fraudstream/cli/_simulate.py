"""``fraudstream simulate``: a bank's transaction stream with fraud robots, into Kafka or a file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import typer

from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.cli._labels import LabelFeed
from fraudstream.cli._lists import parse_ttl_ms
from fraudstream.cli._replay import progress_bar
from fraudstream.config import Settings
from fraudstream.errors import ConfigError
from fraudstream.schema import LabelMessage, encode_card, encode_paysim
from fraudstream.simulate import (
    CARD_ROBOTS,
    CARD_START_MS,
    ROBOTS,
    CardSimulator,
    LiveLabels,
    MixShift,
    PaySimSimulator,
    RateLimiter,
    batch_labels,
    card_table,
    label_table,
    labels_path,
    paysim_table,
    simulate_labels,
    write_history,
    write_labels,
)
from fraudstream.stream import Message, ensure_topics, make_producer, produce_messages

__all__ = ["simulate"]

_CARD_CUSTOMERS = 5_000  # the handbook's, when --accounts is not given


def _robots(names: str | None, fmt: str) -> tuple[str, ...]:
    known = ROBOTS if fmt == "paysim" else CARD_ROBOTS
    if names is None:
        return known
    chosen = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown {fmt} robot(s) {unknown}; choose from {list(known)}")
    return chosen


@app.command()
def simulate(
    rate: float | None = typer.Option(
        None,
        help="Transactions per second; 0 = as fast as possible. With --out: the virtual "
        "clock's rate (PaySim format).",
    ),
    duration: float | None = typer.Option(None, help="Stop after this many seconds."),
    count: int | None = typer.Option(
        None, help="Stop after this many transactions [--out default: 1,000,000]."
    ),
    seed: int | None = typer.Option(None, help="Random seed (same seed, same stream)."),
    accounts: int | None = typer.Option(
        None, help="Customer accounts (default: 20,000; card format: 5,000 customers)."
    ),
    fmt: str = typer.Option("paysim", "--format", help="paysim (the bank's) or card (handbook)."),
    robots: str | None = typer.Option(
        None, help="Comma-separated robots to run (default: all of the format's); '' for none."
    ),
    fraud_rate: float = typer.Option(0.003, help="Share of PaySim records the robots inject."),
    out: Path | None = typer.Option(
        None, help="Write history to FILE.parquet or FILE.csv instead of Kafka."
    ),
    start_ms: int | None = typer.Option(
        None,
        help="Event time origin, ms [paysim: now, with --out 0; card: 2018-04-01 as the handbook].",
    ),
    topic: str | None = typer.Option(None, help="Target topic (default: transactions)."),
    report: Path | None = typer.Option(
        None, help='At the end, write {"produced": N} (JSON) here: what reached the broker.'
    ),
    labels: bool = typer.Option(
        True,
        "--labels/--no-labels",
        help="Labels as a bank receives them (docs/simulator.md): with --out, FILE.labels.parquet "
        "(.csv) beside it; live, to the labels topic (created if missing; key = account, Kafka "
        "timestamp = label time), each just before the first transaction at or after its label "
        "time, and every record gets a txId.",
    ),
    shift_after: str | None = typer.Option(
        None,
        help="Change the mix this long into event time (90s, 30m, 2h): the --shift-* options "
        "apply from then on (PaySim format; drift tests, docs/drift.md).",
    ),
    shift_robots: str | None = typer.Option(
        None, help="Robots from --shift-after on (unchanged if not given)."
    ),
    shift_fraud_rate: float | None = typer.Option(
        None, help="Fraud rate from --shift-after on (unchanged if not given)."
    ),
    shift_amount_scale: float = typer.Option(
        1.0, help="Genuine amounts drawn this many times larger from --shift-after on."
    ),
) -> None:
    """Produce transactions with fraud robots labelling their own, to Kafka or to a file."""
    if fmt not in ("paysim", "card"):
        raise typer.BadParameter("format must be paysim or card", param_hint="--format")
    settings = load_settings(
        simulate={"rate": rate, "seed": seed, "accounts": accounts}, topics={"transactions": topic}
    )
    chosen = _robots(robots, fmt)
    if start_ms is None and fmt == "paysim":
        start_ms = 0 if out is not None else int(time.time() * 1000)
    shift = _shift(fmt, start_ms or 0, shift_after, shift_robots, shift_fraud_rate)
    if shift is not None:
        shift = MixShift(shift.at_ms, shift.robots, shift.fraud_rate, shift_amount_scale)
    try:
        if out is not None:
            rows = 1_000_000 if count is None else count
            _to_file(
                settings,
                fmt,
                chosen,
                fraud_rate,
                start_ms,
                out,
                rows,
                accounts is not None,
                labels,
                shift,
            )
        else:
            sent = _to_kafka(
                settings,
                fmt,
                chosen,
                fraud_rate,
                start_ms,
                count,
                duration,
                accounts is not None,
                labels,
                shift,
            )
            if report is not None:
                report.write_text(json.dumps({"produced": sent}))
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def _shift(
    fmt: str,
    start_ms: int,
    after: str | None,
    robots: str | None,
    fraud_rate: float | None,
) -> MixShift | None:
    """The mix change the --shift-* options ask for (``None``: none)."""
    if after is None:
        return None
    if fmt != "paysim":
        raise typer.BadParameter(
            "only the paysim format can change its mix", param_hint="--shift-after"
        )
    try:
        offset_ms = parse_ttl_ms(after)
    except ValueError:
        raise typer.BadParameter(
            f"{after!r}: write a positive number and a unit s, m, h or d",
            param_hint="--shift-after",
        ) from None
    names = None if robots is None else _robots(robots, fmt)
    return MixShift(start_ms + offset_ms, names, fraud_rate)


def _paysim(
    settings: Settings,
    robots: tuple[str, ...],
    fraud_rate: float,
    start_ms: int,
    shift: MixShift | None = None,
) -> PaySimSimulator:
    sim = settings.simulate
    return PaySimSimulator(
        accounts=sim.accounts,
        seed=sim.seed,
        rate_per_s=sim.rate if sim.rate > 0 else 500.0,
        start_ms=start_ms,
        robots=robots,
        fraud_rate=fraud_rate,
        shift=shift,
    )


def _card(
    settings: Settings, robots: tuple[str, ...], start_ms: int | None, customers_given: bool
) -> CardSimulator:
    customers = settings.simulate.accounts if customers_given else _CARD_CUSTOMERS
    return CardSimulator(
        customers=customers,
        seed=settings.simulate.seed,
        robots=robots,
        start_ms=CARD_START_MS if start_ms is None else start_ms,
    )


def _to_file(
    settings: Settings,
    fmt: str,
    robots: tuple[str, ...],
    fraud_rate: float,
    start_ms: int | None,
    out: Path,
    rows: int,
    customers_given: bool,
    with_labels: bool,
    shift: MixShift | None = None,
) -> None:
    seed = settings.simulate.seed
    found: list[LabelMessage] = []
    if fmt == "paysim":
        paysim = _paysim(settings, robots, fraud_rate, start_ms or 0, shift)

        def next_table(n: int) -> pa.Table:
            first = paysim.emitted
            batch = paysim.history(n)
            if with_labels:
                found.extend(batch_labels(batch, first=first, seed=seed))
            return paysim_table(batch)

    else:
        card = _card(settings, robots, start_ms, customers_given)

        def next_table(n: int) -> pa.Table:
            cols = card.next_columns(n)
            if with_labels:  # ids as replay sends them: TRANSACTION_ID
                found.extend(
                    simulate_labels(
                        [str(i) for i in cols.tx_id.tolist()],
                        [str(c) for c in cols.customer.tolist()],
                        cols.time_s * 1000 + card.start_ms,
                        (cols.scenario > 0).astype("int8"),
                        counterparty=[str(t) for t in cols.terminal.tolist()],
                        positions=cols.tx_id,
                        seed=seed,
                    )
                )
            return card_table(cols, card.start_ms)

    started = time.monotonic()
    with progress_bar() as bar:
        task = bar.add_task(f"{fmt} → {out.name}", total=rows, rate="")

        def progress(done: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{done / elapsed * 60:,.0f} rows/min")

        written = write_history(next_table, out, rows, on_progress=progress)
    elapsed = time.monotonic() - started
    console.print(
        f"wrote {written:,} {fmt} rows to {out} in {elapsed:.1f} s "
        f"({written / elapsed:,.0f} rows/s, {written / elapsed * 60:,.0f} rows/min)"
    )
    if with_labels:
        where = labels_path(out)
        console.print(f"wrote {write_labels(label_table(found), where):,} labels to {where}")


def _to_kafka(
    settings: Settings,
    fmt: str,
    robots: tuple[str, ...],
    fraud_rate: float,
    start_ms: int | None,
    count: int | None,
    duration: float | None,
    customers_given: bool,
    with_labels: bool,
    shift: MixShift | None = None,
) -> int:
    sim = settings.simulate
    client = kafka_client(settings)
    target = settings.topics.transactions
    # ids sim-{seed}-{start}-{n}: a rerun with another start does not reuse a stored id
    prefix = f"sim-{sim.seed}-{start_ms}" if fmt == "paysim" else None
    live = LiveLabels(seed=sim.seed, id_prefix=prefix) if with_labels else None
    topics = [target] + ([settings.topics.labels] if live else [])
    ensure_topics(client, topics, partitions=settings.kafka.partitions)
    limiter = RateLimiter(sim.rate)
    chunk = max(1, int(sim.rate // 50)) if sim.rate > 0 else 2000
    stop = stop_event()
    console.print(
        f"simulating {fmt} to [bold]{target}[/] at {sim.rate or 'max'} tx/s (seed {sim.seed})"
        + (f", labels to [bold]{settings.topics.labels}[/]" if live else "")
    )
    started = time.monotonic()
    producer = make_producer(client, **{"linger.ms": sim.linger_ms})
    feed = LabelFeed(producer, settings.topics.labels, live.pending) if live else None
    if fmt == "paysim":
        paysim = _paysim(settings, robots, fraud_rate, start_ms or 0, shift)

        def next_messages(n: int) -> list[Message]:
            records = paysim.next_batch(n)
            if live is not None:
                live.hold_paysim(records)
            return [(r.nameOrig.encode(), encode_paysim(r), r.eventTimeMs or 0) for r in records]

    else:
        card = _card(settings, robots, start_ms, customers_given)

        def next_messages(n: int) -> list[Message]:
            rows = card.next_messages(n)  # with the merchant category and channel
            if live is not None:
                live.hold_card([r for r, _ in rows])
            return [(r.customerId.encode(), encode_card(r, x), r.eventTimeMs) for r, x in rows]

    sent = produce_messages(
        producer,
        target,
        next_messages,
        chunk=chunk,
        count=count,
        duration_s=duration,
        acquire=limiter.acquire,
        wait_until=feed.before if feed else None,  # due labels go just before each record
        should_stop=stop.is_set,
    )
    elapsed = time.monotonic() - started
    console.print(f"produced {sent:,} transactions in {elapsed:.1f} s ({sent / elapsed:,.0f} tx/s)")
    if feed is not None and live is not None:
        feed.check()
        console.print(
            f"produced {feed.produced:,} labels to [bold]{feed.topic}[/]; "
            f"{len(live.pending):,} not yet due were dropped at the end"
        )
    return sent
