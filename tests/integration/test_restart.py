"""Stopping the detector process with SIGTERM and starting it again loses and duplicates nothing."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import msgspec
import pytest

from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import ensure_topics

from ._kafka_util import produce_raw, read_topic
from ._procs import count_rows, detector_env, start_detector, wait_for_rows

pytestmark = pytest.mark.integration

N_VALID = 60_000


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
    env = detector_env(bootstrap, unique, db, models_dir, tmp_path)
    first = start_detector(env)
    wait_for_rows(first, db, 3_000, timeout_s=60)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out.decode()
    stopped_at = count_rows(db, "transactions_enriched")
    assert 0 < stopped_at < N_VALID, "the first run must stop in the middle of the stream"

    second = start_detector(env, "--idle-exit", "5")
    out, _ = second.communicate(timeout=240)
    assert second.returncode == 0, out.decode()
    # the first run saved its state on shutdown: the second loads it and reads the tail only
    assert "from snapshots at {" in out.decode().replace("\n", " "), out.decode()[-3000:]

    assert count_rows(db, "transactions_enriched") == N_VALID
    stored_alerts = count_rows(db, "fraud_alerts")
    published = read_topic(client, alerts, expect=stored_alerts)
    ids = [msgspec.json.decode(m.value())["alert_id"] for m in published]
    assert set(ids) == {
        row[0] for row in sqlite3.connect(db).execute("SELECT alert_id FROM fraud_alerts")
    }
    assert len(read_topic(client, dlq, expect=1)) == 1
