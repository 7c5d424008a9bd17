"""``kill -9`` of the detector in the middle of a 200,000-transaction run, then a restart.

Every valid transaction ends up exactly once in the store, no alert is lost, the alerts topic
repeats an alert only with the same id and content, and the restarted process computes exactly
the features an uninterrupted run computes (its state is rebuilt, not reset).
"""

from __future__ import annotations

import signal
import sqlite3
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics, ensure_topics

from ._kafka_util import build_detector, produce_raw, read_topic
from ._procs import count_rows, detector_env, start_detector, stored_features, wait_for_rows

pytestmark = pytest.mark.integration

N_VALID = 200_000


def reference_features(
    client: dict[str, str], unique: str, bundle: Bundle, db: Path
) -> dict[str, tuple[int, list[float]]]:
    """Features from one uninterrupted in-process detector over the same topic."""
    store = open_store(f"sqlite:///{db}")
    store.open()
    topics = DetectorTopics(f"tx-{unique}", f"ref-alerts-{unique}", f"ref-dlq-{unique}")
    ensure_topics(client, [topics.alerts, topics.dlq], partitions=4)
    try:
        build_detector(client, topics, f"ref-{unique}", store, bundle).run(
            lambda: False, idle_exit_s=5
        )
    finally:
        store.close()
    return stored_features(db)


def test_kill_9_mid_run_loses_and_duplicates_nothing(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
    bundle: Bundle,
) -> None:
    ensure_topics(client, [f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"], partitions=4)
    records = PaySimSimulator(accounts=20_000, seed=9).next_batch(N_VALID)
    items: list[tuple[bytes, bytes | None]] = [
        (r.nameOrig.encode(), encode_paysim(r)) for r in records
    ]
    items.insert(77_777, (b"C1", b'{"type": "PAYMENT"}'))
    produce_raw(client, f"tx-{unique}", items)

    db = tmp_path / "store.db"
    env = detector_env(bootstrap, unique, db, models_dir, tmp_path)
    env["FRAUDSTREAM_DETECT__SNAPSHOT_EVERY_RECORDS"] = "5000"  # snapshots before the kill
    first = start_detector(env)
    wait_for_rows(first, db, 50_000, timeout_s=120)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = count_rows(db, "transactions_enriched")
    assert 0 < killed_at < N_VALID, "the kill must land in the middle of the run"

    second = start_detector(env, "--idle-exit", "5")
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out.decode()
    assert b"restored feature state" in out.replace(b"\n", b" "), out.decode()[-3000:]
    assert b"from snapshots at {" in out.replace(b"\n", b" "), out.decode()[-3000:]

    assert count_rows(db, "transactions_enriched") == N_VALID
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT alert_id FROM fraud_alerts")}
    assert stored, "the run must raise alerts for the check to mean anything"
    published = read_topic(client, f"alerts-{unique}", expect=len(stored))
    copies: dict[str, set[tuple[float, str]]] = defaultdict(set)
    for m in published:
        alert = msgspec.json.decode(m.value())
        copies[alert["alert_id"]].add((alert["score"], alert["decision"]))
    assert set(copies) == stored  # none lost, none unknown
    assert all(len(c) == 1 for c in copies.values()), "a repeated alert must be the same alert"

    after_restart = stored_features(db)
    reference = reference_features(client, unique, bundle, tmp_path / "reference.db")
    assert len(reference) == N_VALID
    assert after_restart == reference
