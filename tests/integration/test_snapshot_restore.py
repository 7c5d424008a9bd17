"""Restore from a snapshot plus the tail equals a full replay; bad snapshots fall back to it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from confluent_kafka import TopicPartition

from fraudstream.features import CardExtras, CardFeatureEngine, ExtraField, FeatureEngine
from fraudstream.schema import (
    PaySimRecord,
    card_to_batch,
    encode_card,
    encode_paysim,
    paysim_to_batch,
)
from fraudstream.simulate import CardSimulator, PaySimSimulator
from fraudstream.stream._detector import PAYSIM, format_of
from fraudstream.stream._guard import guard_for
from fraudstream.stream._kafka import ensure_topics
from fraudstream.stream._restore import Restored, StateRestorer
from fraudstream.stream._snapshot import RecordMark, Snapshot, SnapshotStore

from ._kafka_util import produce_raw

pytestmark = pytest.mark.integration

N = 6_000
SNAP_AT = 2_501  # offsets: the invalid record sits at 1_000


def _restore(
    client: dict[str, str], topic: str, end: int, store: SnapshotStore | None
) -> tuple[FeatureEngine, Restored, int | None]:
    engine, guard = FeatureEngine(), guard_for("paysim")
    restorer = StateRestorer(client, topic, PAYSIM.decode_messages, snapshots=store)
    done = restorer.restore(engine, [TopicPartition(topic, 0, end)], guard)
    return engine, done, guard.watermarks().get(0)


def _probe_features(engine: FeatureEngine, probe: list[PaySimRecord]) -> npt.NDArray[np.float32]:
    batch = paysim_to_batch(probe, [f"p{i}" for i in range(len(probe))], [0] * len(probe))
    return engine.update_and_extract(batch, np.zeros(len(probe), np.int32))


def test_snapshot_plus_tail_equals_a_full_replay(
    client: dict[str, str], unique: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"tx-{unique}"
    ensure_topics(client, [topic], partitions=1)
    records = PaySimSimulator(accounts=500, seed=3).next_batch(N + 300)
    items: list[tuple[bytes, bytes | None]] = [
        (r.nameOrig.encode(), encode_paysim(r)) for r in records[:N]
    ]
    items.insert(1_000, (b"C1", b'{"type": "PAYMENT"}'))  # dead-lettered live, skipped here
    produce_raw(client, topic, items)
    end = len(items)
    probe = records[N:]

    full, done_full, mark_full = _restore(client, topic, end, None)
    assert done_full.replayed == N and not done_full.snapshots
    expected = _probe_features(full, probe)

    store = SnapshotStore(tmp_path)
    head, done_head, mark_head = _restore(client, topic, SNAP_AT, None)
    last = done_head.last[0]
    assert last.offset == SNAP_AT - 1
    path = store.save(
        Snapshot(topic, 0, SNAP_AT, head.state_fingerprint(), last, head.save_partition(0),
                 mark_head)
    )  # fmt: skip

    restored, done, mark = _restore(client, topic, end, store)
    assert done.snapshots == {0: SNAP_AT}
    assert done.replayed == end - SNAP_AT  # the tail only
    assert done.last[0] == done_full.last[0] and mark == mark_full
    np.testing.assert_array_equal(_probe_features(restored, probe), expected)

    # the snapshot names another record below its offset: a re-created topic
    wrong = RecordMark(last.offset, last.timestamp_ms, last.value_crc ^ 1)
    path.unlink()
    store.save(
        Snapshot(topic, 0, SNAP_AT, head.state_fingerprint(), wrong, head.save_partition(0),
                 mark_head)
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        again, done, _ = _restore(client, topic, end, store)
    assert "re-created?" in caplog.text
    assert not done.snapshots and done.replayed == N
    np.testing.assert_array_equal(_probe_features(again, probe), expected)

    # a corrupt file: a warning and a full replay
    (snap_file,) = (tmp_path / topic / "0").glob("*.snap")
    snap_file.write_bytes(snap_file.read_bytes()[:-100])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again, done, _ = _restore(client, topic, end, store)
    assert "ignoring snapshot" in caplog.text
    assert not done.snapshots and done.replayed == N
    np.testing.assert_array_equal(_probe_features(again, probe), expected)


def test_card_extras_state_restores_from_a_snapshot_plus_tail(
    client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    """The extras' aggregates live in the card state: a snapshot plus the tail (records with
    extra fields, some missing or of a wrong type) gives the state of a full replay."""
    topic = f"card-tx-{unique}"
    ensure_topics(client, [topic], partitions=1)
    spec = CardExtras(
        (ExtraField("channel", "categorical", vocabulary=("pos", "online")),
         ExtraField("score", "numeric"))
    )  # fmt: skip
    card = format_of("card", spec.names_read)
    records = CardSimulator(customers=200, seed=3).next_batch(3_300)
    values: list[object] = ["pos", "online", "contactless", None, 7]  # unseen, missing, wrong
    items: list[tuple[bytes, bytes | None]] = [
        (r.customerId.encode(), encode_card(r, {"channel": values[i % 5], "score": i % 3}))
        for i, r in enumerate(records[:3_000])
    ]
    produce_raw(client, topic, items)
    probe = records[3_000:]

    def restore(end: int, store: SnapshotStore | None) -> tuple[CardFeatureEngine, Restored]:
        engine = CardFeatureEngine(extras=spec)
        restorer = StateRestorer(client, topic, card.decode_messages, snapshots=store)
        return engine, restorer.restore(engine, [TopicPartition(topic, 0, end)], guard_for("card"))

    def features(engine: CardFeatureEngine) -> npt.NDArray[np.float32]:
        batch = card_to_batch(probe, [f"p{i}" for i in range(len(probe))], spec.names_read)
        batch.extras = {"channel": ["online"] * len(probe), "score": [1.0] * len(probe)}
        return engine.update_and_extract(batch, np.zeros(len(probe), np.int32))

    full, _ = restore(len(items), None)
    expected = features(full)
    share = expected[:, full.feature_names.index("channel_share_by_customer_30d")]
    assert np.nanmax(share) > 0  # the history's channels reach the probe's features
    store = SnapshotStore(tmp_path)
    head, done_head = restore(1_200, None)
    last = done_head.last[0]
    store.save(
        Snapshot(topic, 0, 1_200, head.state_fingerprint(), last, head.save_partition(0), None)
    )
    restored, done = restore(len(items), store)
    assert done.snapshots == {0: 1_200} and done.replayed == len(items) - 1_200
    np.testing.assert_array_equal(features(restored), expected)
