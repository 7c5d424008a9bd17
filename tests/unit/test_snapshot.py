"""Partition state snapshots: stable keys, round trips through a file, rejected files."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import CardFeatureEngine, FeatureEngine, StateEngine
from fraudstream.features._state import keys_of
from fraudstream.schema import KINDS, TxBatch
from fraudstream.stream._guard import EventTimeGuard
from fraudstream.stream._snapshot import (
    FORMAT_VERSION,
    RecordMark,
    Snapshot,
    SnapshotStore,
    read_snapshot,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
TOPIC = "tx"


def test_keys_are_the_same_in_every_process() -> None:
    ids = ["C1", "M42", "é-ü", "", "a\x00b", "x" * 10_000, "\ud800"]
    code = f"from fraudstream.features._state import keys_of; print(keys_of({ids!r}).tolist())"
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.add(out.stdout.strip())
    assert seen == {str(keys_of(ids).tolist())}
    assert len(set(keys_of(ids).tolist())) == len(ids)
    # the documented hash, byte for byte (a change must change KEY_HASH: saved state would
    # read other entities)
    assert keys_of(ids).tolist() == [_fnv_splitmix(i.encode("utf-8", "surrogatepass")) for i in ids]


def _fnv_splitmix(raw: bytes) -> int:
    """FNV-1a 64 of ``raw`` then splitmix64's finaliser, as a signed 64-bit integer."""
    m = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for b in raw:
        h = ((h ^ b) * 0x100000001B3) & m
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & m
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & m
    h ^= h >> 31
    return h - (1 << 64) if h >= 1 << 63 else h


def _batch(rows: list[tuple[int, int, int, int, float]], start: int = 0) -> TxBatch:
    n = len(rows)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=[f"t{start + i}" for i in range(n)],
        event_time_ms=np.array([r[0] for r in rows], dtype=np.int64),
        account=[f"A{r[1]}" for r in rows],
        counterparty=[f"A{r[2]}" if r[2] < 6 else f"M{r[2]}" for r in rows],
        kind=np.array([r[3] for r in rows], dtype=np.int8),
        amount=np.array([r[4] for r in rows], dtype=np.float64),
        old_balance_orig=nan,
        new_balance_orig=nan,
        old_balance_dest=nan,
        new_balance_dest=nan,
        label=np.zeros(n, dtype=np.int8),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )


def _through_file(engine: StateEngine, fresh: StateEngine, partition: int, root: Path) -> None:
    """Save ``engine``'s partition to a file under ``root`` and load it into ``fresh``."""
    store = SnapshotStore(root)
    mark = RecordMark(41, 1234, 99)
    store.save(
        Snapshot(TOPIC, partition, 42, engine.state_fingerprint(), mark,
                 engine.save_partition(partition), 7)
    )  # fmt: skip
    snap = store.newest(TOPIC, partition, fresh.state_fingerprint(), 42)
    assert snap is not None and snap.last == mark and snap.guard_watermark_ms == 7
    fresh.load_partition(partition, snap.state)


def _same_state(a: StateEngine, b: StateEngine, partition: int, probe: TxBatch) -> None:
    """The same bookkeeping, hash tables and entity rows (spare capacity is uninitialised, and
    freed pool nodes hold stale values: those are checked by behaviour), then the same features
    for ``probe``."""
    sa, sb = a.save_partition(partition), b.save_partition(partition)
    assert (sa.watermark_ms, sa.swept_ms) == (sb.watermark_ms, sb.swept_ms)
    assert sa.arrays.keys() == sb.arrays.keys()
    if sa.arrays:
        meta = sa.arrays["meta"]
        np.testing.assert_array_equal(meta, sb.arrays["meta"])
        rows = {"s": meta[0], "c": meta[0], "r": meta[1], "t": meta[1]}
        for name, x in sa.arrays.items():
            y = sb.arrays[name]
            if "slot" in name:
                np.testing.assert_array_equal(x, y, err_msg=name)
            elif name[1] == "_" and name[0] in rows:
                n = int(rows[name[0]])
                np.testing.assert_array_equal(x[:n], y[:n], err_msg=name)
    part = np.full(len(probe), partition, np.int32)
    np.testing.assert_array_equal(
        a.update_and_extract(probe, part), b.update_and_extract(probe, part)
    )


def _probe(t_ms: int) -> TxBatch:
    """Every account paying every counterparty at ``t_ms``."""
    return _batch([(t_ms, a, c, 1, 1.0) for a in range(6) for c in range(13)], 10_000)


_rows = st.lists(
    st.tuples(
        st.integers(0, 400),  # hour slot of a ~17-day history: windows and TTL sweeps fire
        st.integers(0, 5),
        st.integers(0, 12),
        st.integers(0, len(KINDS) - 1),
        st.floats(0.0, 5000.0, allow_nan=False),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(rows=_rows, cut=st.integers(0, 120), partition=st.integers(0, 3))
def test_paysim_restore_equals_one_engine_that_saw_everything(
    rows: list[tuple[int, int, int, int, float]], cut: int, partition: int
) -> None:
    rows = sorted(rows)
    rows = [(t * HOUR_MS, *rest) for t, *rest in rows]  # type: ignore[misc]
    head, tail = _batch(rows[:cut]), _batch(rows[cut:], cut)
    part = np.full(len(rows), partition, np.int32)

    def engine() -> FeatureEngine:
        e = FeatureEngine(mode="post_tx", ttl_ms=2 * DAY_MS)
        e.sweep_lag_ms = HOUR_MS
        return e

    whole, before = engine(), engine()
    expected = [whole.update_and_extract(b, part[: len(b)]) for b in (head, tail)]
    before.update_and_extract(head, part[: len(head)])
    after = engine()
    with tempfile.TemporaryDirectory() as root:
        _through_file(before, after, partition, Path(root))
    got = after.update_and_extract(tail, part[: len(tail)])
    np.testing.assert_array_equal(got, expected[1])
    _same_state(after, whole, partition, _probe(rows[-1][0] + HOUR_MS))


@settings(max_examples=40, deadline=None)
@given(rows=_rows, cut=st.integers(0, 120))
def test_card_restore_equals_one_engine_that_saw_everything(
    rows: list[tuple[int, int, int, int, float]], cut: int
) -> None:
    # days apart over ~400 days: 30-day windows slide, the 90-day TTL resets and sweeps
    rows = sorted((t * DAY_MS, *rest) for t, *rest in rows)  # type: ignore[misc]
    head, tail = _batch(rows[:cut]), _batch(rows[cut:], cut)
    whole, before, after = (CardFeatureEngine(delay_ms=DAY_MS) for _ in range(3))
    expected = [whole.update_and_extract(b) for b in (head, tail)]
    before.update_and_extract(head)
    with tempfile.TemporaryDirectory() as root:
        _through_file(before, after, 0, Path(root))
    got = after.update_and_extract(tail)
    np.testing.assert_array_equal(got, expected[1])
    _same_state(after, whole, 0, _probe(rows[-1][0] + DAY_MS))


def _saved(tmp_path: Path, offset: int = 100) -> tuple[SnapshotStore, FeatureEngine, Path]:
    engine = FeatureEngine()
    engine.update_and_extract(_batch([(HOUR_MS * i, i % 3, 7, 1, 10.0) for i in range(50)]))
    store = SnapshotStore(tmp_path)
    snap = Snapshot(TOPIC, 0, offset, engine.state_fingerprint(), RecordMark(offset - 1, 5, 6),
                    engine.save_partition(0), None)  # fmt: skip
    return store, engine, store.save(snap)


def _rewrite_version(path: Path, version: int) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 8, version)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:10]),
        lambda p: p.write_bytes(b""),
        lambda p: _flip(p, len(p.read_bytes()) // 2),  # a bit flipped in the arrays
        lambda p: _rewrite_version(p, FORMAT_VERSION - 1),  # an older format
    ],
    ids=["half", "ten-bytes", "empty", "bit-flip", "old-version"],
)
def test_a_damaged_snapshot_is_skipped_with_a_warning(
    tmp_path: Path, damage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store, engine, path = _saved(tmp_path)
    assert store.newest(TOPIC, 0, engine.state_fingerprint(), 100) is not None
    damage(path)
    with pytest.raises(ValueError):
        read_snapshot(path)
    with caplog.at_level(logging.WARNING):
        assert store.newest(TOPIC, 0, engine.state_fingerprint(), 100) is None
    assert "ignoring snapshot" in caplog.text


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 1
    path.write_bytes(bytes(raw))


def test_another_fingerprint_or_a_later_offset_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, engine, _ = _saved(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert store.newest(TOPIC, 0, FeatureEngine(ttl_ms=DAY_MS).state_fingerprint(), 100) is None
    assert "fingerprint" in caplog.text
    assert store.newest(TOPIC, 0, engine.state_fingerprint(), 99) is None  # ahead of commit
    assert store.newest(TOPIC, 1, engine.state_fingerprint(), 100) is None


def test_two_engines_snapshots_at_the_same_offset_are_each_found(tmp_path: Path) -> None:
    """A changed engine (another fingerprint) snapshotting at the same committed offset: each
    engine finds its own file, whichever the folder lists first."""
    store, engine, _ = _saved(tmp_path)
    other = FeatureEngine(ttl_ms=DAY_MS)
    other.update_and_extract(_batch([(HOUR_MS * i, i % 3, 7, 1, 10.0) for i in range(50)]))
    store.save(
        Snapshot(TOPIC, 0, 100, other.state_fingerprint(), RecordMark(99, 5, 6),
                 other.save_partition(0), None)
    )  # fmt: skip
    for e in (engine, other):
        snap = store.newest(TOPIC, 0, e.state_fingerprint(), 100)
        assert snap is not None and snap.fingerprint == e.state_fingerprint()


def test_the_newest_usable_snapshot_wins_and_old_ones_are_pruned(tmp_path: Path) -> None:
    store, engine, first = _saved(tmp_path, 100)
    _, _, second = _saved(tmp_path, 200)
    _, _, third = _saved(tmp_path, 300)
    assert not first.exists() and second.exists() and third.exists()
    fp = engine.state_fingerprint()
    assert (snap := store.newest(TOPIC, 0, fp, 250)) is not None and snap.offset == 200
    _flip(third, len(third.read_bytes()) - 1)
    assert (snap := store.newest(TOPIC, 0, fp, 1000)) is not None and snap.offset == 200


def test_a_snapshot_of_another_layout_does_not_load(tmp_path: Path) -> None:
    store, engine, _ = _saved(tmp_path)
    snap = store.newest(TOPIC, 0, engine.state_fingerprint(), 100)
    assert snap is not None
    with pytest.raises(ValueError):
        CardFeatureEngine().load_partition(0, snap.state)


def test_guard_watermarks_round_trip() -> None:
    g = EventTimeGuard(max_future_skew_ms=0, max_lateness_ms=10)
    g.check(np.array([100, 50]), np.zeros(2, np.int64), np.array([0, 1], np.int32))
    h = EventTimeGuard(max_future_skew_ms=0, max_lateness_ms=10)
    h.restore_watermarks({0: g.watermarks()[0]})
    assert h.check(np.array([80]), np.zeros(1, np.int64), np.zeros(1, np.int32))
