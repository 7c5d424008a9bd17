"""Stopping the detector process with SIGTERM and starting it again loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import ensure_topics

from ._kafka_util import produce_raw, read_topic

pytestmark = pytest.mark.integration

N_VALID = 60_000


def count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def start_detector(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fraudstream", "detect", "--quiet", "--batch-max", "500", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigterm_and_restart_neither_lose_nor_duplicate(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path, models_dir: Path
) -> None:
    tx, alerts, dlq = f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"
    ensure_topics(client, [tx, alerts, dlq], partitions=4)
    records = PaySimSimulator(accounts=5_000, seed=5).next_batch(N_VALID)
    items: list[tuple[bytes, bytes | None]] = [
        (r.nameOrig.encode(), encode_paysim(r)) for r in records
    ]
    items.insert(1000, (b"C1", b"garbage"))
    produce_raw(client, tx, items)

    db = tmp_path / "store.db"
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_TOPICS__TRANSACTIONS": tx,
        "FRAUDSTREAM_TOPICS__ALERTS": alerts,
        "FRAUDSTREAM_TOPICS__DLQ": dlq,
        "FRAUDSTREAM_STORE__URL": f"sqlite:///{db}",
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_DATA_DIR": str(tmp_path),
        "FRAUDSTREAM_DETECT__GROUP_ID": f"g-{unique}",
    }
    first = start_detector(env)
    deadline = time.monotonic() + 60
    while count_rows(db, "transactions_enriched") < 3_000 and time.monotonic() < deadline:
        assert first.poll() is None, first.stdout.read().decode() if first.stdout else ""
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out.decode()
    stopped_at = count_rows(db, "transactions_enriched")
    assert 0 < stopped_at < N_VALID, "the first run must stop in the middle of the stream"

    second = start_detector(env, "--idle-exit", "5")
    out, _ = second.communicate(timeout=240)
    assert second.returncode == 0, out.decode()

    assert count_rows(db, "transactions_enriched") == N_VALID
    stored_alerts = count_rows(db, "fraud_alerts")
    published = read_topic(client, alerts, expect=stored_alerts)
    ids = [msgspec.json.decode(m.value())["alert_id"] for m in published]
    assert set(ids) == {
        row[0] for row in sqlite3.connect(db).execute("SELECT alert_id FROM fraud_alerts")
    }
    assert len(read_topic(client, dlq, expect=1)) == 1
