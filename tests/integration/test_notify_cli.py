"""The notifier end to end: alerts topic (own consumer group) → webhook, failures → PostgreSQL."""

from __future__ import annotations

import json

import msgspec
import psycopg
import pytest

from fraudstream.cli._notify import run_notify
from fraudstream.config import Settings
from fraudstream.stream import ensure_topics
from tests.unit.test_notify import Hook, make_alert

from ._kafka_util import produce_raw
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration


def settings(
    bootstrap: str, topic: str, schema: str, url: str, group: str, **notify: object
) -> Settings:
    """The notifier on ``topic`` → webhook ``url``, recording in PostgreSQL ``schema``."""
    return Settings(
        kafka={"bootstrap_servers": bootstrap},  # type: ignore[arg-type]
        topics={"alerts": topic},  # type: ignore[arg-type]
        store={"url": PG_URL, "pg_schema": schema},  # type: ignore[arg-type]
        notify={  # type: ignore[arg-type]
            "group_id": group,
            "channels": ["webhook"],
            "webhook_url": url,
            "webhook_secret": "s3cret",
            "rate_per_s": 1000,
            **notify,
        },
    )


def test_notify_sends_blocks_once_and_records_failures(
    bootstrap: str, client: dict[str, str], unique: str, pg_schema: str
) -> None:
    topic = f"alerts-{unique}"
    ensure_topics(client, [topic], partitions=2)
    alerts = [make_alert(f"tx-{i}", "block" if i % 2 else "review") for i in range(10)]
    items = [(a.account.encode(), msgspec.json.encode(a)) for a in alerts]
    produce_raw(client, topic, items + items[:4])  # redelivered duplicates

    hook = Hook(statuses=[500, 500])  # the first block fails twice: recorded as failure
    try:
        s = settings(
            bootstrap,
            topic,
            pg_schema,
            hook.url,
            f"n-{unique}",
            max_attempts=2,
            backoff_initial_s=0.05,
        )
        d = run_notify(s, should_stop=lambda: False, idle_exit_s=4.0)
    finally:
        hook.close()
    blocks = {a.alert_id for a in alerts if a.decision == "block"}
    sent = [json.loads(body)["alert_id"] for _, body in hook.requests]
    assert set(sent) == blocks and len(sent) == len(blocks) + 1  # one retry of the failed one
    assert d.sent == len(blocks) - 1 and d.failed == 1
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}") as conn:
        rows = conn.execute("SELECT alert_id, channel, attempts FROM notification_failures")
        assert [tuple(r) for r in rows] == [(sent[0], "webhook", 2)]
