"""``fraudstream detect``: score every transaction of the stream as it arrives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import typer

from fraudstream.cli._app import app, console, kafka_client, load_settings, stop_event
from fraudstream.cli._model import serving_bundle
from fraudstream.config import Settings
from fraudstream.features import engine_for
from fraudstream.model import Bundle
from fraudstream.schema import WindowStats
from fraudstream.sinks import open_store
from fraudstream.stream import (
    Detector,
    DetectorStats,
    DetectorTopics,
    ModelWatcher,
    SlidingWindow,
    StateRestorer,
    ensure_topics,
    format_of,
    make_consumer,
    make_producer,
    topic_partitions,
)

__all__ = ["live_line", "run_detector"]

log = logging.getLogger(__name__)


def live_line(w: WindowStats, stats: DetectorStats) -> None:
    """One line per closed window: the last 30 s of the stream and the detector's throughput."""
    console.print(
        f"[dim]{_clock(w.window_end_ms)}[/] last {w.window_ms // 1000}s: "
        f"{w.transactions:>6,} tx {w.frauds:>4} frauds {w.alerts:>4} alerts "
        f"amount {_human(w.amount):>6} fraud {w.fraud_amount_share:6.2%} "
        f"| {stats.rate():>6,.0f} tx/s",
        highlight=False,
        soft_wrap=True,
    )


def _human(amount: float) -> str:
    for unit, size in (("bn", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(amount) >= size:
            return f"{amount / size:.1f}{unit}"
    return f"{amount:.0f}"


def _clock(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%H:%M:%S")


def run_detector(
    settings: Settings,
    *,
    should_stop: Callable[[], bool],
    model: Path | None = None,
    challenger: Path | None = None,
    idle_exit_s: float | None = None,
    on_window: Callable[[WindowStats, DetectorStats], None] | None = live_line,
) -> DetectorStats:
    """Build the detector from settings and run it until ``should_stop``."""
    path = model or serving_bundle(settings.models_dir)  # the promoted bundle
    bundle = Bundle.load(path)
    client = kafka_client(settings)
    topics = settings.topics
    ensure_topics(
        client,
        [topics.transactions, topics.alerts, topics.dlq],
        partitions=settings.kafka.partitions,
    )
    _check_state_partitions(bundle, topic_partitions(client, topics.transactions))
    store = open_store(
        settings.store_url(),
        schema=settings.store.pg_schema,
        retention_days=settings.store.retention_days,
    )
    store.open()
    d = settings.detect
    prefetch = {"queued.max.messages.kbytes": d.prefetch_mib * 1024}  # detector and restore
    record_format = format_of(bundle.mode)  # a card bundle reads card records
    engine = engine_for(bundle.mode)
    detector = Detector(
        consumer=make_consumer(
            client, d.group_id, session_timeout_ms=d.session_timeout_ms, **prefetch
        ),
        producer=make_producer(client),
        topics=DetectorTopics(topics.transactions, topics.alerts, topics.dlq),
        store=store,
        bundle=bundle,
        engine=engine,
        window=SlidingWindow(d.window_ms, d.window_step_ms),
        batch_max=d.batch_max,
        poll_timeout_ms=d.batch_timeout_ms,
        on_window=on_window,
        restorer=StateRestorer(
            {**client, **prefetch}, topics.transactions, record_format.decode_messages
        ),
        models=None if model else ModelWatcher(settings.models_dir, bundle),
        challenger=Bundle.load(challenger) if challenger else None,
    )
    log.info(
        "detector: model %s (%s records), store %s, group %s",
        bundle.version,
        record_format.name,
        settings.store_url(),
        d.group_id,
    )
    try:
        return detector.run(should_stop, idle_exit_s=idle_exit_s)
    finally:
        store.close()


def _check_state_partitions(bundle: Bundle, partitions: int) -> None:
    """Warn when training kept feature state over another partition count than the topic's."""
    trained = bundle.metrics.get("data", {}).get("state_partitions")
    if trained is not None and partitions and trained != partitions:
        log.warning(
            "bundle %s was trained with feature state over %d partition(s) but %s has %d: "
            "counterparty features will differ from training; retrain with "
            "FRAUDSTREAM_KAFKA__PARTITIONS=%d",
            bundle.version,
            trained,
            "the transactions topic",
            partitions,
            partitions,
        )


@app.command()
def detect(
    group_id: str | None = typer.Option(
        None, help="Consumer group [default: fraudstream-detector]."
    ),
    model: Path | None = typer.Option(
        None, help="Bundle directory [default: the promoted one under models/, hot-reloaded]."
    ),
    challenger: Path | None = typer.Option(
        None, help="A second bundle scored in shadow: its decisions are stored, never acted on."
    ),
    batch_max: int | None = typer.Option(None, help="Largest batch consumed at once."),
    idle_exit: float | None = typer.Option(None, help="Exit after this many seconds without data."),
    quiet: bool = typer.Option(False, help="No live window lines."),
) -> None:
    """Consume transactions, score them, raise alerts and keep live window statistics."""
    settings = load_settings(detect={"group_id": group_id, "batch_max": batch_max})
    stop = stop_event()
    stats = run_detector(
        settings,
        should_stop=stop.is_set,
        model=model,
        challenger=challenger,
        idle_exit_s=idle_exit,
        on_window=None if quiet else live_line,
    )
    console.print(
        f"detector stopped: {stats.valid:,} scored, {stats.invalid:,} to the dead-letter topic, "
        f"{stats.decisions}"
    )
