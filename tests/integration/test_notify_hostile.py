"""`fraudstream notify` against hostile webhooks (issue 16 item 6), as a process.

A webhook that trickles its answer one header line every 2 s, one that answers bytes that are
not HTTP: the notifier neither hangs nor crashes, and SIGTERM ends it within seconds, mid-delivery
or mid back-off, with exit code 0 and its batch left uncommitted for the restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from fraudstream.stream import ensure_topics
from tests.unit.test_notify import RawServer, garbage, make_alert, trickle

from ._kafka_util import produce_raw
from ._pg_util import PG_URL
from .test_notify_backpressure import committed, pg_rows, wait_for

pytestmark = pytest.mark.integration


class Notifier:
    """``fraudstream notify`` on a topic holding one block alert, all output in ``log``."""

    def __init__(
        self, client: dict[str, str], bootstrap: str, unique: str, schema: str, tmp: Path
    ) -> None:
        self.client, self.topic, self.group = client, f"alerts-{unique}", f"n-{unique}"
        ensure_topics(client, [self.topic], partitions=1)
        alert = make_alert(f"h-{unique}")
        produce_raw(client, self.topic, [(alert.account.encode(), msgspec.json.encode(alert))])
        self.env = {
            **os.environ,
            "COLUMNS": "250",
            "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "FRAUDSTREAM_TOPICS__ALERTS": self.topic,
            "FRAUDSTREAM_STORE__URL": PG_URL,
            "FRAUDSTREAM_STORE__PG_SCHEMA": schema,
            "FRAUDSTREAM_NOTIFY__GROUP_ID": self.group,
            "FRAUDSTREAM_NOTIFY__CHANNELS": '["webhook"]',
        }
        self.log = tmp / "notify.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, url: str, *args: str, **notify: str) -> subprocess.Popen[bytes]:
        env = self.env | {"FRAUDSTREAM_NOTIFY__WEBHOOK_URL": url}
        env |= {f"FRAUDSTREAM_NOTIFY__{k.upper()}": v for k, v in notify.items()}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "fraudstream", "notify", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def run_to_end(self, server: RawServer, **notify: str) -> str:
        """Run until idle for 8 s against ``server`` (closed after); the output of a notifier
        that failed (and recorded) its one alert without a traceback."""
        try:
            code = self.start(server.url, "--idle-exit", "8", **notify).wait(120)
        finally:
            server.close()
        out = self.output()
        assert code == 0 and "0 sent, 1 failed and recorded" in out, out
        assert "Traceback" not in out, out
        return out

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took to exit."""
        assert self.proc is not None and self.proc.poll() is None, self.output()
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        took_s = time.monotonic() - started
        print(f"notify exited with code {code} {took_s:.2f} s after SIGTERM")
        return code, took_s

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def notifier(
    client: dict[str, str], bootstrap: str, unique: str, pg_schema: str, tmp_path: Path
) -> Iterator[Notifier]:
    n = Notifier(client, bootstrap, unique, pg_schema, tmp_path)
    yield n
    n.close()


def test_sigterm_mid_delivery_to_a_trickling_webhook(notifier: Notifier) -> None:
    server = RawServer(trickle(2.0))
    try:
        notifier.start(server.url, webhook_timeout_s="60")  # only the stop can end it soon
        wait_for(lambda: server.lines_sent >= 2, 60, "the webhook trickling to the notifier")
        code, took_s = notifier.stop()
    finally:
        server.close()
    out = notifier.output()
    assert code == 0 and took_s < 5.0, (took_s, out)
    assert "cut short by a stop" in out and "batch not committed" in out, out
    assert "0 sent, 0 failed" in out and "Traceback" not in out, out
    assert committed(notifier.client, notifier.group, notifier.topic, 1) == 0  # for the restart


def test_sigterm_during_the_back_off_after_a_garbage_answer(notifier: Notifier) -> None:
    server = RawServer(garbage(b"\x00\xffnot http\r\n\r\n"))
    try:
        notifier.start(server.url, backoff_initial_s="60")
        wait_for(lambda: "not HTTP" in notifier.output(), 60, "the first failed attempt")
        time.sleep(1.0)  # inside the 60 s back-off
        code, took_s = notifier.stop()
    finally:
        server.close()
    out = notifier.output()
    assert code == 0 and took_s < 5.0, (took_s, out)
    assert server.connections == 1 and "Traceback" not in out, out
    assert committed(notifier.client, notifier.group, notifier.topic, 1) == 0


def test_a_garbage_answer_is_retried_then_recorded_without_a_traceback(
    notifier: Notifier, pg_schema: str
) -> None:
    server = RawServer(garbage(b"SSH-2.0-OpenSSH_9.6\r\n"))
    out = notifier.run_to_end(server, max_attempts="3", backoff_initial_s="0.05")
    assert out.count("something that is not HTTP (BadStatusLine") == 3, out
    assert server.connections == 3
    rows = pg_rows(pg_schema, "SELECT attempts, error FROM notification_failures")
    assert len(rows) == 1 and rows[0][0] == 3 and "not HTTP" in str(rows[0][1])
    assert committed(notifier.client, notifier.group, notifier.topic, 1) == 1


def test_a_trickling_webhook_fails_at_its_deadline_and_is_recorded(
    notifier: Notifier, pg_schema: str
) -> None:
    server = RawServer(trickle(2.0))
    out = notifier.run_to_end(server, webhook_timeout_s="3", max_attempts="1")
    assert "did not answer alert" in out and "within 3 s" in out
    assert pg_rows(pg_schema, "SELECT attempts FROM notification_failures") == [(1,)]
