"""Shared snapshots in object storage (a real S3 server, moto's, in a thread): the key layout,
the newest KEEP kept, the same bytes as the local file, a restore with an empty local directory,
bad shared files skipped, an unreachable store only logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream._s3 import S3Location
from fraudstream.errors import ConfigError
from fraudstream.features._state import SavedPartition
from fraudstream.stream._shared import SharedSnapshots, call_alive
from fraudstream.stream._snapshot import KEEP, RecordMark, Snapshot, SnapshotStore, snapshot_name
from tests._s3 import moto_server, s3_client

TOPIC = "tx"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def shared(endpoint: str, request: pytest.FixtureRequest) -> SharedSnapshots:
    client = s3_client(endpoint)
    bucket = f"snap-{abs(hash(request.node.name)) % 10**9}"
    client.create_bucket(Bucket=bucket)
    return SharedSnapshots(S3Location(bucket, "fraud/state"), client)


def _snap(offset: int, *, fingerprint: str = "fp1", partition: int = 0) -> Snapshot:
    arrays = {"keys": np.arange(offset, offset + 50, dtype=np.int64)}
    mark = RecordMark(offset - 1, 1_700_000_000_000 + offset, offset * 7)
    state = SavedPartition(arrays, 1_700_000_000_000 + offset, None)
    return Snapshot(TOPIC, partition, offset, fingerprint, mark, state, offset * 10)


def _objects(shared: SharedSnapshots) -> dict[str, bytes]:
    listed = shared.client.list_objects_v2(Bucket=shared.location.bucket).get("Contents", [])
    return {
        o["Key"]: shared.client.get_object(Bucket=shared.location.bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }


def test_keys_mirror_the_local_layout() -> None:
    name = snapshot_name("abc-def", 42)
    assert name == "abc-def-00000000000000000042.snap"
    with_prefix = SharedSnapshots(S3Location.parse("s3://bank/fraud/state/"), client=None)
    assert with_prefix.key("tx", 3, name) == "fraud/state/tx/3/" + name
    bare = SharedSnapshots(S3Location.parse("s3://bank"), client=None)
    assert bare.key("tx", 3, name) == "tx/3/" + name
    assert bare.location.describe() == "s3://bank/"
    with pytest.raises(ConfigError, match="expected s3://bucket/prefix"):
        S3Location.parse("https://bank/state")


def test_uploads_keep_the_newest_per_partition_and_fingerprint(
    shared: SharedSnapshots, tmp_path: Path
) -> None:
    store = SnapshotStore(tmp_path, shared)
    for offset in (100, 200, 300, 400):
        store.save(_snap(offset))
        assert shared.close()  # waits for the upload: each one prunes
    store.save(_snap(150, fingerprint="fp2"))
    store.save(_snap(120, partition=1))
    assert shared.close()
    objects = _objects(shared)
    expected = [f"0/{snapshot_name('fp1', o)}" for o in (300, 400)[-KEEP:]]
    expected += [f"0/{snapshot_name('fp2', 150)}", f"1/{snapshot_name('fp1', 120)}"]
    assert sorted(objects) == sorted(f"fraud/state/{TOPIC}/{k}" for k in expected)
    for key, raw in objects.items():  # the local file, byte for byte
        local = tmp_path / TOPIC / key.split("/")[-2] / key.split("/")[-1]
        assert raw == local.read_bytes()


def test_a_member_with_an_empty_directory_restores_the_shared_snapshot(
    shared: SharedSnapshots, tmp_path: Path
) -> None:
    writer = SnapshotStore(tmp_path / "a", shared)
    writer.save(_snap(100))
    writer.save(_snap(200))
    writer.close()
    reader = SnapshotStore(tmp_path / "b", shared)
    snap = reader.newest(TOPIC, 0, "fp1", 10_000)
    want = _snap(200)
    assert snap is not None and (snap.offset, snap.last) == (want.offset, want.last)
    np.testing.assert_array_equal(snap.state.arrays["keys"], want.state.arrays["keys"])
    assert reader.newest(TOPIC, 0, "fp1", 199) is not None  # the older one, below the offset
    assert sorted(p.name for p in (tmp_path / "b" / TOPIC / "0").iterdir()) == [
        snapshot_name("fp1", 100),
        snapshot_name("fp1", 200),
    ]  # downloaded, no temporary file left
    assert reader.newest(TOPIC, 0, "fp1", 99) is None
    assert reader.newest(TOPIC, 0, "fp-other", 10_000) is None


def test_bad_shared_snapshots_fall_back_to_an_older_one_with_a_warning(
    shared: SharedSnapshots, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SnapshotStore(tmp_path / "a", shared)
    writer.save(_snap(100))
    writer.save(_snap(200))
    writer.close()
    newer = shared.key(TOPIC, 0, snapshot_name("fp1", 200))
    raw = (tmp_path / "a" / TOPIC / "0" / snapshot_name("fp1", 200)).read_bytes()
    bucket = shared.location.bucket
    shared.client.put_object(Bucket=bucket, Key=newer, Body=raw[:-100])  # truncated
    reader = SnapshotStore(tmp_path / "b", shared)
    with caplog.at_level(logging.WARNING):
        snap = reader.newest(TOPIC, 0, "fp1", 10_000)
    assert snap is not None and snap.offset == 100
    assert "ignoring snapshot" in caplog.text and "checksum mismatch" in caplog.text
    assert not (tmp_path / "b" / TOPIC / "0" / snapshot_name("fp1", 200)).exists()

    older = shared.key(TOPIC, 0, snapshot_name("fp1", 100))
    shared.client.put_object(Bucket=bucket, Key=older, Body=b"not a snapshot at all")
    for p in (tmp_path / "b" / TOPIC / "0").iterdir():
        p.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert reader.newest(TOPIC, 0, "fp1", 10_000) is None
    assert caplog.text.count("ignoring snapshot") == 2


def test_an_unreachable_store_is_logged_and_local_snapshots_still_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fraudstream.stream._shared import open_shared

    with moto_server() as gone:
        pass  # a port nothing listens on any more
    shared = open_shared("s3://bank/state", endpoint_url=gone, region="us-east-1")
    store = SnapshotStore(tmp_path, shared)
    with caplog.at_level(logging.WARNING):
        store.save(_snap(100))
        assert shared.close(timeout_s=60)
        snap = store.newest(TOPIC, 0, "fp1", 10_000)
    assert "not uploaded" in caplog.text and "next snapshot tries again" in caplog.text
    assert "cannot list the shared snapshots" in caplog.text
    assert snap is not None and snap.offset == 100  # the local one


def test_call_alive_keeps_calling_while_it_waits() -> None:
    calls: list[float] = []
    main = threading.get_ident()

    def slow() -> int:
        assert threading.get_ident() != main  # off the calling thread
        time.sleep(0.7)
        return 7

    assert call_alive(slow, lambda: calls.append(time.monotonic())) == 7
    assert len(calls) >= 2

    def fails() -> Any:
        raise OSError("boom")

    with pytest.raises(OSError, match="boom"):
        call_alive(fails, lambda: None)
    assert call_alive(lambda: 3, None) == 3
