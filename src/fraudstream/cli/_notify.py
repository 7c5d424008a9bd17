"""``fraudstream notify``: tell analysts about alerts (webhook, e-mail), off the hot path."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import typer

from fraudstream._prometheus import metrics_url
from fraudstream.cli._app import app, console, fail, kafka_client, load_settings, stop_event
from fraudstream.config import DriftSettings, NotifySettings, Settings
from fraudstream.errors import FraudstreamError
from fraudstream.model._drift import feature_group
from fraudstream.sinks import (
    Dispatcher,
    EmailChannel,
    RateLimiter,
    Store,
    WebhookChannel,
    open_store,
    run_notifier,
)
from fraudstream.sinks._drift import drift_alerts
from fraudstream.sinks._notify import Channel, NotificationLog
from fraudstream.sinks._notify_metrics import NotifyMetrics
from fraudstream.stream import ensure_topics, make_consumer
from fraudstream.stream._watchdog import lag_from_statistics

__all__ = ["build_channels", "drift_notices", "run_notify"]

log = logging.getLogger(__name__)


def build_channels(
    n: NotifySettings, *, should_stop: Callable[[], bool] = lambda: False
) -> list[Channel]:
    """The configured channels (none configured: a configuration error); ``should_stop`` cuts
    a webhook delivery short."""
    channels: list[Channel] = []
    for name in n.channels:
        if name == "webhook":
            if not n.webhook_url:
                raise fail("notify channel webhook needs FRAUDSTREAM_NOTIFY__WEBHOOK_URL")
            channels.append(
                WebhookChannel(
                    n.webhook_url,
                    secret=n.webhook_secret,
                    timeout_s=n.webhook_timeout_s,
                    cancelled=should_stop,
                )
            )
        else:
            channels.append(
                EmailChannel(
                    n.smtp_host,
                    n.smtp_port,
                    sender=n.email_from,
                    recipients=n.email_to,
                    starttls=n.smtp_starttls,
                    username=n.smtp_username,
                    password=n.smtp_password,
                    timeout_s=n.smtp_timeout_s,
                    ca_file=n.smtp_ca_file,
                )
            )
    if not channels:
        raise fail("no notify channel; set FRAUDSTREAM_NOTIFY__CHANNELS='[\"webhook\"]' or email")
    return channels


def run_notify(
    settings: Settings, *, should_stop: Callable[[], bool], idle_exit_s: float | None = None
) -> Dispatcher:
    """Build the notifier from settings and run it until ``should_stop``."""
    n = settings.notify
    channels = build_channels(n, should_stop=should_stop)
    client = kafka_client(settings)
    ensure_topics(client, [settings.topics.alerts], partitions=settings.kafka.partitions)
    store = open_store(settings.store_url(), schema=settings.store.pg_schema)
    store.open()
    if not isinstance(store, NotificationLog):
        raise fail(f"store {store!r} cannot record notifications")
    dispatcher = Dispatcher(
        channels,
        store,
        decisions=n.decisions,
        max_attempts=n.max_attempts,
        backoff_initial_s=n.backoff_initial_s,
        backoff_max_s=n.backoff_max_s,
        rate=RateLimiter(n.rate_per_s, burst=max(1, int(n.rate_per_s))),
        should_stop=should_stop,
        metrics=NotifyMetrics([c.name for c in channels]),
    )
    log.info("notifier: %s for %s, group %s", [c.name for c in channels], n.decisions, n.group_id)
    stats = _served(dispatcher.metrics, n.metrics_host, n.metrics_port, settings.topics.alerts)
    consumer = make_consumer(client, n.group_id, **stats)
    try:
        run_notifier(
            consumer,
            settings.topics.alerts,
            dispatcher,
            should_stop,
            idle_exit_s=idle_exit_s,
            side=drift_notices(store, dispatcher, settings.drift),
        )
    finally:
        consumer.close()
        store.close()
    return dispatcher


def drift_notices(
    store: Store, dispatcher: Dispatcher, d: DriftSettings
) -> Callable[[Callable[[float], None]], int]:
    """The drift alarms the detectors raised (table ``model_drift``), each notified once on
    every channel (``alert_id`` ``drift:<version>:<window end>``), naming the histograms that
    count for the alarm under ``d``."""
    after_ms = 0

    def counts(name: str) -> bool:
        return feature_group(name) in d.alarm_groups and name not in d.ignore

    def poll(wait: Callable[[float], None]) -> int:
        nonlocal after_ms
        alerts = drift_alerts(store.drift_alarms(after_ms), counts)
        handled = sum(dispatcher.handle(a, wait=wait) for a in alerts)
        if alerts:
            after_ms = max(a.event_time_ms for a in alerts)
        return handled

    return poll


def _served(metrics: NotifyMetrics, host: str, port: int, topic: str) -> dict[str, Any]:
    """Serve ``metrics`` on ``host:port`` (``port`` 0: not served); the consumer settings that
    report its lag on ``topic`` into them."""
    if not port:
        return {}
    metrics.serve(port, host)
    log.info("metrics at %s", metrics_url(host, port))

    def on_stats(doc: str) -> None:
        metrics.set_lag(lag_from_statistics(doc, topic))

    return {"statistics.interval.ms": 1000, "stats_cb": on_stats}


@app.command()
def notify(
    idle_exit: float | None = typer.Option(None, help="Exit after this many seconds without data."),
) -> None:
    """Send alerts (default: blocks) to the configured webhook and e-mail channels.

    Drift alarms the detectors store (docs/drift.md) are sent too, once each,
    whatever DECISIONS: decision "drift", the drifting features as reasons.

    Settings, FRAUDSTREAM_NOTIFY__…: CHANNELS ('["webhook","email"]'),
    DECISIONS ('["block"]'), WEBHOOK_URL, WEBHOOK_SECRET (HMAC-SHA256 in
    X-Fraudstream-Signature), WEBHOOK_TIMEOUT_S (a whole delivery: connect,
    headers and body), SMTP_HOST, SMTP_PORT, SMTP_STARTTLS, SMTP_CA_FILE,
    SMTP_USERNAME, SMTP_PASSWORD, EMAIL_FROM, EMAIL_TO, RATE_PER_S,
    BACKOFF_INITIAL_S, BACKOFF_MAX_S, MAX_ATTEMPTS, GROUP_ID, METRICS_PORT and
    METRICS_HOST (Prometheus metrics, on 127.0.0.1 by default: docs/operations.md).

    A channel that is down (refused, timeout, an answer that is not HTTP,
    HTTP 5xx/408/425/429) holds consumption: partitions paused, no offset
    committed, retried with exponential back-off until it answers;
    MAX_ATTEMPTS=n gives up after n attempts instead. A notification that fails
    for good (HTTP 4xx, a redirect, SMTP login refused, or MAX_ATTEMPTS
    reached) is recorded in the store's table
    notification_failures. Each delivery is recorded per channel in
    notifications_sent before its offset is committed: a restart never repeats
    one. SIGTERM or Ctrl-C stops within seconds, even mid-delivery or mid
    back-off, leaving that batch to the restart. URLs are logged without
    passwords or tokens.
    """
    settings = load_settings()
    try:
        d = run_notify(settings, should_stop=stop_event().is_set, idle_exit_s=idle_exit)
    except FraudstreamError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"notifier stopped: {d.sent:,} sent, {d.failed:,} failed and recorded, "
        f"{d.skipped:,} skipped as already handled"
    )
