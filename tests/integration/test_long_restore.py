"""A long restore keeps the detector's group member, even when the group rebalances meanwhile.

A first detector scores a topic's history and commits. A second one, in the same group,
restores that history (no snapshot: a full replay, slowed down to outlast
``max.poll.interval.ms``, which librdkafka also uses as the rebalance timeout); while it
restores, a third detector process joins the group, so a partition moves away mid-restore.
Every record is stored once, with the features of one uninterrupted engine, and the restoring
member is never dropped from the group.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from fraudstream import stream
from fraudstream.config import DetectSettings, Settings, TopicSettings
from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import SQLiteStore
from fraudstream.stream import ensure_topics
from fraudstream.stream._guard import EventTimeGuard

from ._kafka_util import produce_raw
from ._procs import detector_env, start_detector, stored_features
from .test_kill9 import reference_features

pytestmark = pytest.mark.integration

HISTORY = 12_000
MORE = 3_000
MAX_POLL_MS = 6_000  # librdkafka's floor: session.timeout.ms (6 s)
RESTORE_S = 10.0  # the replay is slowed down to last about this long


def _detector(
    client: dict[str, Any], unique: str, db: Path, bundle: Bundle, **extra: Any
) -> stream.Detector:
    settings = Settings(
        topics=TopicSettings(
            transactions=f"tx-{unique}", alerts=f"alerts-{unique}", dlq=f"dlq-{unique}"
        ),
        detect=DetectSettings(
            group_id=f"g-{unique}", batch_max=2_000, snapshots=False, labels=False
        ),
    )
    store = SQLiteStore(db)
    store.open()
    return stream.build_detector(settings, bundle, store, client={**client, **extra})


def test_a_long_restore_keeps_the_member_through_a_rebalance(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
    bundle: Bundle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ensure_topics(client, [f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"], partitions=2)
    records = PaySimSimulator(accounts=2_000, seed=17).next_batch(HISTORY + MORE)
    items = [(r.nameOrig.encode(), encode_paysim(r)) for r in records]
    produce_raw(client, f"tx-{unique}", items[:HISTORY])

    first = _detector(client, unique, tmp_path / "a.db", bundle)
    first.run(lambda: False, idle_exit_s=3.0)
    assert first.stats.consumed == HISTORY

    second = _detector(
        client, unique, tmp_path / "b.db", bundle, **{"max.poll.interval.ms": MAX_POLL_MS}
    )
    assert second.restorer is not None
    # the restore's own consumer is in no group (the interval does not apply, and its
    # session timeout, librdkafka's default of 45 s, is above it)
    del second.restorer.client["max.poll.interval.ms"]
    decode, restoring = second.restorer.decode, threading.Event()
    second.restorer.batch_max = 500

    def slow(msgs: list[Message], guard: EventTimeGuard) -> Any:
        restoring.set()
        time.sleep(RESTORE_S / (HISTORY / 500))
        return decode(msgs, guard)

    second.restorer.decode = slow
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="fraudstream"):
        runner = threading.Thread(target=second.run, args=(stop.is_set,), daemon=True)
        runner.start()
        assert restoring.wait(timeout=60)
        third = start_detector(
            detector_env(bootstrap, unique, tmp_path / "c.db", models_dir, tmp_path / "c")
        )
        produce_raw(client, f"tx-{unique}", items[HISTORY:])
        deadline = time.monotonic() + 120
        stored: dict[str, tuple[int, list[float]]] = {}
        while time.monotonic() < deadline and len(stored) < HISTORY + MORE:
            assert third.poll() is None, third.stdout.read().decode() if third.stdout else ""
            time.sleep(1.0)
            stored = {
                **stored_features(tmp_path / "a.db"),
                **(stored_features(tmp_path / "b.db") if (tmp_path / "b.db").exists() else {}),
                **(stored_features(tmp_path / "c.db") if (tmp_path / "c.db").exists() else {}),
            }
        stop.set()
        third.send_signal(signal.SIGTERM)
        out = third.communicate(timeout=60)[0].decode()
        runner.join(timeout=60)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert third.returncode == 0, out
    assert not runner.is_alive(), text
    assert len(stored) == HISTORY + MORE, text
    assert stored == reference_features(client, unique, bundle, tmp_path / "reference.db")
    # the restoring member answered the rebalance: it gave a partition up and kept the other
    assigned = [r for r in caplog.records if r.getMessage().startswith("assigned")]
    assert len(assigned) == 1, text
    assert second.stats.consumed > 0 and stored_features(tmp_path / "c.db"), text
