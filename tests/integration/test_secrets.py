"""No password or token of a URL in anything the real processes print (issue 16 item 5).

``detect``, ``dashboard`` and ``notify`` run as a user runs them (``-v``: debug lines too), with a
PostgreSQL store URL that carries a password (this machine's PostgreSQL trusts local connections,
so any password works) and a webhook URL that carries a token; all their output is searched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgspec
import pytest

from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import ensure_topics
from tests.unit.test_notify import Hook, make_alert

from ._kafka_util import produce_raw
from ._pg_util import PG_URL
from ._procs import detector_env
from .test_notify_backpressure import pg_rows

pytestmark = pytest.mark.integration

DB_SECRET = "SeCrEt123"
TOKEN = "SeCrEt456"
SECRET_URL = PG_URL.replace("postgres@", f"postgres:{DB_SECRET}@")
SHOWN_URL = PG_URL.replace("postgres@", "postgres:***@")


def fraudstream(*args: str, env: dict[str, str], timeout_s: float = 120) -> tuple[int, str]:
    """Run the CLI; its exit code and everything it printed (stdout and stderr)."""
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream", "-v", *args],
        env={**env, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return out.returncode, out.stdout


def test_detect_never_prints_the_store_password(
    client: dict[str, str],
    bootstrap: str,
    unique: str,
    models_dir: Path,
    tmp_path: Path,
    pg_schema: str,
) -> None:
    env = detector_env(bootstrap, unique, tmp_path / "unused.db", models_dir, tmp_path)
    env |= {"FRAUDSTREAM_STORE__URL": SECRET_URL, "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema}
    ensure_topics(client, [f"tx-{unique}"], partitions=2)
    records = PaySimSimulator(accounts=300, seed=3).next_batch(2_000)
    produce_raw(client, f"tx-{unique}", [(r.nameOrig.encode(), encode_paysim(r)) for r in records])

    code, out = fraudstream("detect", "--idle-exit", "3", env=env)
    assert code == 0, out
    assert pg_rows(pg_schema, "SELECT count(*) FROM transactions_enriched") == [(2_000,)]
    assert f"store {SHOWN_URL}" in out  # the store is named, without its password
    assert DB_SECRET not in out

    missing = SECRET_URL.rsplit("/", 1)[0] + f"/no_db_{unique}"  # the store fails to open
    code, out = fraudstream(
        "detect", "--idle-exit", "3", env={**env, "FRAUDSTREAM_STORE__URL": missing}
    )
    assert code == 1 and f"no_db_{unique}" in out and "postgres:***@" in out, out
    assert DB_SECRET not in out


def test_dashboard_never_prints_the_store_password(pg_schema: str) -> None:
    env = {**os.environ, "COLUMNS": "250", "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream", "-v", "dashboard"]
        + ["--store-url", SECRET_URL, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = ""
        while not (found := re.search(r"dashboard at (http://127\.0\.0\.1:\d+)", first)):
            line = proc.stdout.readline()  # migration log lines come first
            assert line, first
            first += line
        with urllib.request.urlopen(f"{found.group(1)}/_stcore/health", timeout=30) as reply:
            assert reply.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = first + rest
    assert f"(store {SHOWN_URL})" in out and proc.returncode == 0, out
    assert DB_SECRET not in out


def test_notify_never_prints_the_webhook_token(
    client: dict[str, str], bootstrap: str, unique: str, pg_schema: str, tmp_path: Path
) -> None:
    topic = f"alerts-{unique}"
    ensure_topics(client, [topic], partitions=1)
    alerts = [make_alert(f"s-{i}") for i in range(2)]
    produce_raw(client, topic, [(a.account.encode(), msgspec.json.encode(a)) for a in alerts])
    hook = Hook(statuses=[500] * 10)  # failing: every attempt is logged with the URL
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_TOPICS__ALERTS": topic,
        "FRAUDSTREAM_STORE__URL": SECRET_URL,
        "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema,
        "FRAUDSTREAM_NOTIFY__GROUP_ID": f"n-{unique}",
        "FRAUDSTREAM_NOTIFY__CHANNELS": '["webhook"]',
        "FRAUDSTREAM_NOTIFY__WEBHOOK_URL": f"{hook.url}?token={TOKEN}",
        "FRAUDSTREAM_NOTIFY__MAX_ATTEMPTS": "2",
        "FRAUDSTREAM_NOTIFY__BACKOFF_INITIAL_S": "0.05",
        "FRAUDSTREAM_NOTIFY__RATE_PER_S": "1000",
    }
    try:
        code, out = fraudstream("notify", "--idle-exit", "5", env=env)
    finally:
        hook.close()
    assert code == 0, out
    assert len(hook.requests) == 4 and "2 failed and recorded" in out, out
    assert "/hook?token=*** answered HTTP 500" in out  # the warnings name the endpoint
    assert TOKEN not in out and DB_SECRET not in out
    errors = pg_rows(pg_schema, "SELECT error FROM notification_failures")  # shown on the dashboard
    assert len(errors) == 2 and all("token=***" in str(e) and TOKEN not in str(e) for e in errors)
