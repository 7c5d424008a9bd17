"""``fraudstream detect``: score every transaction of the stream as it arrives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from fraudstream._prometheus import metrics_url
from fraudstream._redact import redact
from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.cli._model import serving_bundle
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, FraudstreamError
from fraudstream.model import Bundle
from fraudstream.schema import WindowStats
from fraudstream.sinks import Store, feedback_lines, label_feedback, open_store
from fraudstream.stream import (
    DetectorMetrics,
    DetectorStats,
    ModelWatcher,
    build_detector,
    format_of,
)

__all__ = ["LiveLine", "clock_utc", "human", "live_line", "run_detector", "summary_table"]

log = logging.getLogger(__name__)


class LiveLine:
    """One line per closed window: the last 30 s of the stream, the detector's rate and lag.

    ``09:14:03 UTC last 30s: 15,549 tx, 28 frauds (0.18% of tx, 0.68% of amount), 157 alerts,
    amount 1.4M CU | 490 tx/s now, 488 mean | lag 12``; a stall is flagged in red.
    """

    def __init__(self, currency: str = "CU") -> None:
        self.currency = currency

    def __call__(self, w: WindowStats, stats: DetectorStats) -> None:
        console.print(self.text(w, stats), highlight=False, soft_wrap=True)

    def text(self, w: WindowStats, stats: DetectorStats) -> str:
        tx_share = w.frauds / w.transactions if w.transactions else 0.0
        line = (
            f"[dim]{clock_utc(w.window_end_ms)}[/] last {w.window_ms // 1000}s: "
            f"{w.transactions:>6,} tx, {w.frauds:>3} frauds ({tx_share:.2%} of tx, "
            f"{w.fraud_amount_share:.2%} of amount), {w.alerts:>3} alerts, "
            f"amount {human(w.amount)} {self.currency} "
            f"| {stats.current_rate():>6,.0f} tx/s now, {stats.rate():,.0f} mean"
        )
        if stats.lag is not None:
            line += f" | lag {stats.lag:,}"
        if stats.stalled_s > 0:
            line += f" [bold red]STALLED {stats.stalled_s:.0f} s[/]"
        return line


def live_line(w: WindowStats, stats: DetectorStats) -> None:
    """:class:`LiveLine` with the default currency label."""
    LiveLine()(w, stats)


def human(amount: float) -> str:
    """``1.4bn``, ``12.3M``, ``4.5k``, ``870``."""
    for unit, size in (("bn", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(amount) >= size:
            return f"{amount / size:.1f}{unit}"
    return f"{amount:.0f}"


def clock_utc(ms: int) -> str:
    """``HH:MM:SS UTC`` of an epoch time in ms; ``--:--:--`` for one no calendar can show."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return "--:--:-- UTC"


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
    # without --model or --challenger, the registered challenger is followed (hot reloaded)
    follow = model is None and challenger is None
    bundle = Bundle.load(path)
    shadow = Bundle.load(challenger) if challenger else None
    store = open_store(
        settings.store_url(),
        schema=settings.store.pg_schema,
        retention_days=settings.store.retention_days,
    )
    store.open()
    lookups = _lookup_store(settings) if settings.detect.labels else None
    try:
        detector = build_detector(
            settings,
            bundle,
            store,
            client=kafka_client(settings),
            lookup=None if lookups is None else lookups.lookup_transactions,
            models=None
            if model
            else ModelWatcher(settings.models_dir, bundle, follow_challenger=follow),
            challenger=shadow,
            on_window=on_window,
            metrics=_metrics(settings.detect.metrics_port, settings.detect.metrics_host),
        )
        log.info(
            "detector: model %s (%s records), store %s, group %s",
            bundle.version,
            format_of(bundle.mode).name,
            redact(settings.store_url()),
            settings.detect.group_id,
        )
        return detector.run(should_stop, idle_exit_s=idle_exit_s)
    finally:
        store.close()
        if lookups is not None:
            lookups.close()


def _lookup_store(settings: Settings) -> Store:
    """A second connection to the store, for the label channel's lookups (the first one belongs
    to the output thread)."""
    store = open_store(settings.store_url(), schema=settings.store.pg_schema)
    store.open()
    return store


def _metrics(port: int, host: str) -> DetectorMetrics | None:
    """Prometheus metrics served on ``host:port`` (None when ``port`` is 0)."""
    if not port:
        return None
    metrics = DetectorMetrics()
    try:
        metrics.serve(port, host)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    log.info("metrics at %s", metrics_url(host, port))
    return metrics


@app.command()
def detect(
    group_id: str | None = typer.Option(
        None, help="Consumer group (default: fraudstream-detector)."
    ),
    model: Path | None = typer.Option(
        None, help="Bundle directory (default: the promoted one under models/, hot-reloaded)."
    ),
    challenger: Path | None = typer.Option(
        None,
        help="A second bundle scored in shadow: its decisions are stored, never acted on "
        "(default: the registered challenger, `fraudstream retrain`, unless --model is given).",
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
        on_window=None if quiet else LiveLine(settings.dashboard.currency),
    )
    console.print(summary_table(stats, title="fraudstream detect — stopped"))
    console.print("feedback from labels (the store's alerts against the labels so far):")
    for line in label_feedback_lines(settings):
        console.print(f"  {line}", highlight=False)


def label_feedback_lines(settings: Settings) -> list[str]:
    """Per age of the stored alerts: how many are labelled so far and how many of those are
    confirmed fraud, beside ground truth (``sinks.label_feedback``); one line if unavailable."""
    from fraudstream.dashboard import Database  # the dashboard's reader: imported when needed

    try:
        db = Database(settings.store_url(), schema=settings.store.pg_schema)
        try:
            return feedback_lines(label_feedback(db.rows)) or ["no alerts stored yet"]
        finally:
            db.close()
    except FraudstreamError as exc:  # the summary still prints
        return [f"unavailable: {exc}"]


def summary_table(stats: DetectorStats, *, title: str) -> Table:
    """What a detector run did, as a labelled table (precision/recall when labels exist)."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records consumed", f"{stats.consumed:,}")
    table.add_row("transactions scored", f"{stats.valid:,}")
    table.add_row("sent to the dead-letter topic", f"{stats.invalid:,}")
    for name, n in stats.decisions.items():
        share = n / stats.valid if stats.valid else 0.0
        table.add_row(f"decision: {name}", f"{n:,} ({share:.2%})")
    if stats.labelled:
        table.add_row("labelled transactions (ground truth in the records)", f"{stats.labelled:,}")
        table.add_row("frauds among them", f"{stats.frauds:,}")
        table.add_row("alert precision (review+block that are fraud)", _fmt(stats.precision))
        table.add_row("alert recall (frauds that raised an alert)", _fmt(stats.recall))
    if stats.labels is not None:
        lab = stats.labels
        table.add_row("labels read (fraud-labels)", f"{lab.read:,}")
        table.add_row(
            "  applied / duplicate / contradicting",
            f"{lab.applied:,} / {lab.duplicates:,} / {lab.contradicting:,}",
        )
        table.add_row(
            "  invalid / waiting for their transaction / never seen",
            f"{lab.invalid:,} / {lab.pending:,} / {lab.never_seen:,}",
        )
    table.add_row("throughput, mean since start (tx/s)", f"{stats.rate():,.0f}")
    if stats.lag is not None:
        table.add_row("lag at the end (records not yet scored)", f"{stats.lag:,}")
    stall_text = f"{stats.stalls:,}" if not stats.stalls else f"[bold red]{stats.stalls:,}[/]"
    table.add_row("stalls (lag with nothing consumed)", stall_text)
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
