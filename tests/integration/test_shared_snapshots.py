"""Shared snapshots end to end: a detector uploads its partition's snapshot to a real S3 server
(moto's); a member on another machine (an empty snapshot directory) restores from it plus the
tail, exactly as a full replay would; a corrupt shared snapshot falls back to a full replay with
a warning; an unreachable S3 never stops the detector."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from confluent_kafka import TopicPartition

from fraudstream import stream
from fraudstream.config import DetectSettings, Settings, TopicSettings
from fraudstream.features import StateEngine, engine_for
from fraudstream.model import Bundle
from fraudstream.schema import PaySimRecord, encode_paysim, paysim_to_batch
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import SQLiteStore
from fraudstream.stream import Detector, ensure_topics
from fraudstream.stream._detector import PAYSIM
from fraudstream.stream._guard import guard_for
from fraudstream.stream._restore import Restored, StateRestorer
from fraudstream.stream._shared import open_shared
from fraudstream.stream._snapshot import SnapshotStore
from tests._s3 import AWS_ENV, moto_server, s3_client

from ._kafka_util import produce_raw

pytestmark = pytest.mark.integration

BUCKET = "bank-state"
PREFIX = "fraudstream/state"
HEAD, TAIL = 4_000, 1_500


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


def _run_detector(
    client: dict[str, str], unique: str, bundle: Bundle, state: Path, endpoint: str
) -> Detector:
    """A detector as ``fraudstream detect`` builds it, sharing snapshots at ``endpoint``, run
    until idle (it snapshots and uploads on shutdown)."""
    settings = Settings(
        topics=TopicSettings(
            transactions=f"tx-{unique}", alerts=f"alerts-{unique}", dlq=f"dlq-{unique}"
        ),
        detect=DetectSettings(
            group_id=f"g-{unique}",
            batch_max=1_000,
            labels=False,
            snapshot_dir=state,
            snapshot_url=f"s3://{BUCKET}/{PREFIX}",
            snapshot_s3_endpoint_url=endpoint,
        ),
    )
    store = SQLiteStore(state.parent / f"store-{state.name}.db")
    store.open()
    detector = stream.build_detector(settings, bundle, store, client=client)
    try:
        detector.run(lambda: False, idle_exit_s=3.0)
    finally:
        store.close()
    return detector


def _produce(client: dict[str, str], topic: str, records: list[PaySimRecord]) -> None:
    produce_raw(client, topic, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])


def _restore(
    client: dict[str, str], topic: str, end: int, store: SnapshotStore | None
) -> tuple[StateEngine, Restored, int | None]:
    """Partition 0 restored up to ``end`` as the detector restores it (with a keep-alive)."""
    engine, guard = engine_for("pre_auth"), guard_for("paysim")
    engine.sweep_lag_ms = guard.max_lateness_ms  # as the detector sets it (build_detector)
    restorer = StateRestorer(client, topic, PAYSIM.decode_messages, snapshots=store)
    done = restorer.restore(engine, [TopicPartition(topic, 0, end)], guard, keep_alive=set)
    return engine, done, guard.watermarks().get(0)


def _features(engine: StateEngine, probe: list[PaySimRecord]) -> npt.NDArray[np.float32]:
    batch = paysim_to_batch(probe, [f"p{i}" for i in range(len(probe))], [0] * len(probe))
    return engine.update_and_extract(batch, np.zeros(len(probe), np.int32))


def _shared_keys(endpoint: str, topic: str) -> dict[str, bytes]:
    s3 = s3_client(endpoint)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{topic}/").get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_another_machine_restores_from_the_shared_snapshot_plus_the_tail(
    client: dict[str, str],
    unique: str,
    bundle: Bundle,
    endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = f"tx-{unique}"
    ensure_topics(client, [topic], partitions=1)
    records = PaySimSimulator(accounts=400, seed=9).next_batch(HEAD + TAIL + 200)
    _produce(client, topic, records[:HEAD])
    first = _run_detector(client, unique, bundle, tmp_path / "machine-a", endpoint)
    assert first.stats.valid == HEAD

    # (a) the shutdown snapshot, at the committed offset, is in S3 byte for byte
    shared = _shared_keys(endpoint, topic)
    (local,) = (tmp_path / "machine-a" / topic / "0").glob("*.snap")
    assert shared == {f"{PREFIX}/{topic}/0/{local.name}": local.read_bytes()}
    assert local.name.endswith(f"-{HEAD:020d}.snap")

    # (b) a member on another machine (an empty directory): the snapshot from S3, then the tail,
    # exactly the state of a full replay
    _produce(client, topic, records[HEAD : HEAD + TAIL])
    end, probe = HEAD + TAIL, records[HEAD + TAIL :]
    full, done_full, mark_full = _restore(client, topic, end, None)
    assert done_full.replayed == end and not done_full.snapshots
    expected = _features(full, probe)
    restored, done, mark = _restore(client, topic, end, _store(tmp_path / "b", endpoint))
    assert done.snapshots == {0: HEAD} and done.replayed == TAIL
    assert done.last[0] == done_full.last[0] and mark == mark_full
    np.testing.assert_array_equal(_features(restored, probe), expected)

    # ... and a detector there: restored from S3, it reads the tail only and uploads in turn
    caplog.set_level(logging.INFO)
    second = _run_detector(client, unique, bundle, tmp_path / "machine-c", endpoint)
    assert second.stats.valid == TAIL
    assert f"from snapshots at {{0: {HEAD}}}" in caplog.text
    assert "downloaded snapshot" in caplog.text
    assert len(_shared_keys(endpoint, topic)) == 2

    # (c) the newest shared snapshot corrupt: the older one plus the tail, with a warning
    s3, newest = s3_client(endpoint), max(_shared_keys(endpoint, topic))
    assert newest.endswith(f"-{end:020d}.snap")
    s3.put_object(Bucket=BUCKET, Key=newest, Body=_shared_keys(endpoint, topic)[newest][:-64])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        restored, done, _ = _restore(client, topic, end, _store(tmp_path / "d", endpoint))
    assert "ignoring snapshot" in caplog.text and "checksum mismatch" in caplog.text
    assert done.snapshots == {0: HEAD} and done.replayed == TAIL
    np.testing.assert_array_equal(_features(restored, probe), expected)

    # ... both corrupt: a full replay, with a warning
    for key in _shared_keys(endpoint, topic):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"FSSNAP\0\0 not a snapshot")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        restored, done, _ = _restore(client, topic, end, _store(tmp_path / "e", endpoint))
    assert caplog.text.count("ignoring snapshot") == 2
    assert not done.snapshots and done.replayed == end
    np.testing.assert_array_equal(_features(restored, probe), expected)


def test_an_unreachable_s3_never_stops_the_detector(
    client: dict[str, str],
    unique: str,
    bundle: Bundle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """(d) Uploads fail (logged), the detector scores everything and keeps local snapshots."""
    topic = f"tx-{unique}"
    ensure_topics(client, [topic], partitions=1)
    _produce(client, topic, PaySimSimulator(accounts=400, seed=4).next_batch(HEAD))
    with moto_server() as gone:
        pass  # a port nothing listens on any more
    with caplog.at_level(logging.WARNING):
        detector = _run_detector(client, unique, bundle, tmp_path / "state", gone)
    assert detector.stats.valid == HEAD
    assert "not uploaded" in caplog.text and "next snapshot tries again" in caplog.text
    assert len(list((tmp_path / "state" / topic / "0").glob("*.snap"))) == 1


def _store(folder: Path, endpoint: str) -> SnapshotStore:
    """A snapshot store in ``folder`` sharing snapshots at ``endpoint``."""
    return SnapshotStore(folder, open_shared(f"s3://{BUCKET}/{PREFIX}", endpoint_url=endpoint))
