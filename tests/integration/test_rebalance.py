"""Two detector processes share a 4-partition topic; moved partitions take their state along.

The first process owns all four partitions and scores phase 1. A second process joins the same
group: two partitions move to it and it rebuilds their feature state from the topic. Phase 2 is
then split between them. Every row's features equal a single uninterrupted process's.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from fraudstream.features import partition_of
from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import ensure_topics

from ._kafka_util import produce_raw, read_topic
from ._procs import count_rows, detector_env, start_detector, stored_features, wait_for_rows
from .test_kill9 import reference_features

pytestmark = pytest.mark.integration

PHASE_1 = 20_000
PHASE_2 = 30_000


def test_partitions_move_with_their_state(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
    bundle: Bundle,
) -> None:
    ensure_topics(client, [f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"], partitions=4)
    records = PaySimSimulator(accounts=3_000, seed=11).next_batch(PHASE_1 + PHASE_2)
    items = [(r.nameOrig.encode(), encode_paysim(r)) for r in records]
    produce_raw(client, f"tx-{unique}", items[:PHASE_1])

    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    group = f"g-{unique}"
    a = start_detector(detector_env(bootstrap, unique, db_a, models_dir, tmp_path, group))
    wait_for_rows(a, db_a, PHASE_1, timeout_s=120)

    b = start_detector(detector_env(bootstrap, unique, db_b, models_dir, tmp_path, group))
    # Phase 2 trickles in until the second process scores some of it, then the rest follows.
    sent = PHASE_1
    deadline = time.monotonic() + 90
    while count_rows(db_b, "transactions_enriched") == 0 and time.monotonic() < deadline:
        assert b.poll() is None, b.stdout.read().decode() if b.stdout else ""
        produce_raw(client, f"tx-{unique}", items[sent : sent + 500])
        sent += 500
        time.sleep(0.5)
    produce_raw(client, f"tx-{unique}", items[sent:])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = {**stored_features(db_a), **stored_features(db_b)} if db_b.exists() else {}
        if len(rows) == PHASE_1 + PHASE_2:
            break
        time.sleep(0.5)
    for proc in (a, b):
        proc.send_signal(signal.SIGTERM)
    out_b = b.communicate(timeout=60)[0].decode()
    assert a.wait(timeout=60) == 0 and b.returncode == 0, out_b

    first, second = stored_features(db_a), stored_features(db_b)
    union = {**first, **second}
    assert len(union) == PHASE_1 + PHASE_2
    moved = {p for p, _ in second.values()}
    assert moved and moved < {0, 1, 2, 3}, f"the second process must own some partitions: {moved}"
    assert {p for p, _ in first.values()} == {0, 1, 2, 3}  # the first owned them all in phase 1
    assert "restored feature state" in out_b.replace("\n", " ")
    assert "from snapshots at {" in out_b.replace("\n", " ")  # saved by the first on revoke
    reference = reference_features(client, unique, bundle, tmp_path / "reference.db")
    assert union == reference
    moved_rows = [tx for tx, (p, _) in second.items() if p in moved]
    assert len(moved_rows) > 1000


def test_partition_of_mirrors_the_default_partitioner(client: dict[str, str], unique: str) -> None:
    """Training partitions history as the producer does, so its state matches the detector's."""
    topic = f"keys-{unique}"
    ensure_topics(client, [topic], partitions=4)
    keys = [f"C{i * 7919}" for i in range(400)]
    produce_raw(client, topic, [(k.encode(), b"{}") for k in keys])
    got = {m.key().decode(): m.partition() for m in read_topic(client, topic, expect=len(keys))}
    assert len(set(got.values())) == 4
    assert [got[k] for k in keys] == partition_of(keys, 4).tolist()
