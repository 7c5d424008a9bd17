"""The notifier against a real webhook that goes down, and a notifier killed mid-stream.

Real parts only: the embedded broker, PostgreSQL, a local HTTP server, ``fraudstream notify`` as a
process. Every block alert must reach the webhook exactly once (answered deliveries counted).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from fraudstream.cli._notify import run_notify
from fraudstream.sinks import Alert
from fraudstream.stream import ensure_topics
from tests.unit.test_notify import Hook, make_alert

from ._kafka_util import produce_raw
from ._pg_util import PG_URL
from .test_notify_cli import settings as notify_settings

pytestmark = pytest.mark.integration


def produce_alerts(client: dict[str, str], topic: str, alerts: list[Alert]) -> None:
    produce_raw(client, topic, [(a.account.encode(), msgspec.json.encode(a)) for a in alerts])


def committed(client: dict[str, str], group: str, topic: str, partitions: int) -> int:
    """Offsets the group has committed, summed over the partitions (without joining it)."""
    consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def pg_rows(schema: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}") as conn:
        return [tuple(r) for r in conn.execute(sql)]  # type: ignore[arg-type]


def test_down_webhook_holds_consumption_and_loses_nothing(
    client: dict[str, str], bootstrap: str, unique: str, pg_schema: str
) -> None:
    topic, group = f"alerts-{unique}", f"n-{unique}"
    ensure_topics(client, [topic], partitions=2)
    first = [make_alert(f"a-{i}") for i in range(10)]
    later = [make_alert(f"b-{i}") for i in range(10)]
    produce_alerts(client, topic, first)
    hook = Hook()
    settings = notify_settings(
        bootstrap,
        topic,
        pg_schema,
        hook.url,
        group,
        webhook_timeout_s=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.4,
    )
    assert settings.notify.max_attempts is None  # the default holds, never gives up
    stop = threading.Event()
    errors: list[BaseException] = []

    def notify() -> None:
        try:
            run_notify(settings, should_stop=stop.is_set)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=notify, daemon=True)
    worker.start()
    try:
        wait_for(lambda: committed(client, group, topic, 2) == 10, 30, "the first 10 committed")
        hook.stop()  # the endpoint goes down
        produce_alerts(client, topic, later)
        time.sleep(3.0)  # the notifier retries against the closed port meanwhile
        assert committed(client, group, topic, 2) == 10  # nothing committed while down
        assert worker.is_alive() and not errors
        hook.start()  # back on the same port
        wait_for(lambda: len(hook.delivered) == 20, 30, "all 20 alerts delivered")
        wait_for(lambda: committed(client, group, topic, 2) == 20, 30, "all 20 committed")
    finally:
        stop.set()
        worker.join(30)
        hook.close()
    assert not errors
    assert sorted(hook.delivered) == sorted(a.alert_id for a in first + later)  # once each
    assert pg_rows(pg_schema, "SELECT count(*) FROM notifications_sent") == [(20,)]
    assert pg_rows(pg_schema, "SELECT count(*) FROM notification_failures") == [(0,)]


def test_permanent_failure_is_recorded_and_consumption_goes_on(
    client: dict[str, str], bootstrap: str, unique: str, pg_schema: str
) -> None:
    topic, group = f"alerts-{unique}", f"n-{unique}"
    ensure_topics(client, [topic], partitions=1)
    alerts = [make_alert(f"c-{i}") for i in range(4)]
    produce_alerts(client, topic, alerts)
    hook = Hook(statuses=[200, 400])  # the second alert is rejected for good
    settings = notify_settings(bootstrap, topic, pg_schema, hook.url, group)
    try:
        d = run_notify(settings, should_stop=lambda: False, idle_exit_s=8.0)
    finally:
        hook.close()
    assert hook.delivered == ["c-0", "c-2", "c-3"] and d.failed == 1
    rows = pg_rows(
        pg_schema, "SELECT alert_id, channel, attempts, error FROM notification_failures"
    )
    assert [r[:3] for r in rows] == [("c-1", "webhook", 1)] and "HTTP 400" in str(rows[0][3])
    assert committed(client, group, topic, 1) == 4


def test_notifier_killed_mid_stream_delivers_each_alert_once(
    client: dict[str, str], bootstrap: str, unique: str, pg_schema: str, tmp_path: Path
) -> None:
    topic, group = f"alerts-{unique}", f"n-{unique}"
    ensure_topics(client, [topic], partitions=1)
    alerts = [make_alert(f"k-{i}") for i in range(20)]
    produce_alerts(client, topic, alerts)
    hook = Hook()
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_TOPICS__ALERTS": topic,
        "FRAUDSTREAM_STORE__URL": PG_URL,
        "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema,
        "FRAUDSTREAM_NOTIFY__GROUP_ID": group,
        "FRAUDSTREAM_NOTIFY__CHANNELS": '["webhook"]',
        "FRAUDSTREAM_NOTIFY__WEBHOOK_URL": hook.url,
        "FRAUDSTREAM_NOTIFY__RATE_PER_S": "1000",
    }
    command = [sys.executable, "-m", "fraudstream", "notify", "--idle-exit"]
    first = subprocess.Popen(  # noqa: S603 - our own CLI
        [*command, "8"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def kill_at_the_seventh(_body: bytes) -> bool:
        if len(hook.delivered) == 6 and first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)  # before answering: not delivered
            first.wait(10)
            return True
        return False

    hook.on_request = kill_at_the_seventh
    try:
        first.wait(60)
        assert first.returncode == -signal.SIGKILL
        assert committed(client, group, topic, 1) == 0  # its batch was never committed
        hook.on_request = None
        second = subprocess.run(  # noqa: S603 - our own CLI (the dead member's session must
            [*command, "20"],  # time out before the partition is reassigned)
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        hook.close()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "6 skipped as already handled" in second.stdout.replace("\n", " ")
    assert hook.delivered == [a.alert_id for a in alerts]  # each once, in order
    assert committed(client, group, topic, 1) == 20
