"""Hostile event times in a live stream, through the real detector and a restart.

A year-2100 record, one from 2099 (far ahead of its broker timestamp), an epoch-0 record and
one just outside ``max_lateness`` go to the dead-letter topic with their reasons; one just inside
is scored. Every other record is stored once, the window statistics keep advancing, no entity
state is swept, and a restarted detector (which restores its partitions by replaying the topic,
late records included) computes exactly the features one fresh engine computes over the
accepted records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from fraudstream import stream
from fraudstream.config import DetectSettings, Settings, TopicSettings
from fraudstream.features import CardFeatureEngine, FeatureEngine, StateEngine, partition_of
from fraudstream.features._card import DAY_MS
from fraudstream.model import Bundle, train_bundle
from fraudstream.schema import (
    CardRecord,
    PaySimRecord,
    WindowStats,
    card_to_batch,
    encode_card,
    encode_paysim,
    paysim_to_batch,
)
from fraudstream.simulate import CardSimulator, PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import Detector, DetectorStats, DetectorTopics, Job, ensure_topics
from fraudstream.stream._guard import DEFAULT_LIMITS

from ._kafka_util import produce_raw, read_topic
from ._procs import stored_features

pytestmark = pytest.mark.integration

PARTITIONS = 2
START_MS = 1_704_067_200_000  # 2024-01-01: behind any broker timestamp of this test
YEAR_2100 = 4_102_444_800_000 + DAY_MS
YEAR_2099 = 4_070_908_800_000

Record = PaySimRecord | CardRecord


def _key(r: Record) -> str:
    return r.nameOrig if isinstance(r, PaySimRecord) else r.customerId


def _encode(r: Record) -> bytes:
    return encode_paysim(r) if isinstance(r, PaySimRecord) else encode_card(r)


def _hostile(
    records: Sequence[Record], tag: str, lateness: int
) -> tuple[list[Record], Record, str, int, int]:
    """Records to append after ``records`` on the partition of their busiest key: year 2100,
    2099, epoch 0 and just outside the lateness bound; one just inside it; the key, its
    partition and the partition's watermark (its latest event time so far)."""
    key = Counter(_key(r) for r in records).most_common(1)[0][0]
    part = int(partition_of([key], PARTITIONS)[0])
    keys = [_key(r) for r in records]
    mark = max(
        r.eventTimeMs or 0
        for r, p in zip(records, partition_of(keys, PARTITIONS).tolist(), strict=True)
        if p == part
    )
    base = next(r for r in records if _key(r) == key)
    times = {
        "y2100": YEAR_2100,
        "y2099": YEAR_2099,
        "epoch": 0,
        "outside": mark - lateness - 1,
        "inside": mark - lateness,
    }
    made = {
        name: msgspec.structs.replace(base, txId=f"{tag}-{name}", eventTimeMs=t)
        for name, t in times.items()
    }
    inside = made.pop("inside")
    return list(made.values()), inside, key, part, mark


class _Probe(Detector):
    """Notes the state after each durable batch (a closing detector drops its partitions)."""

    entities = -1
    marks: dict[int, int] = {}  # noqa: RUF012

    def on_durable(self, job: Job) -> None:
        if isinstance(self.engine, FeatureEngine):
            self.entities = self.engine.entity_count()
        self.marks = self.guard.watermarks()


def _detector(
    client: dict[str, str],
    topics: DetectorTopics,
    group: str,
    db: Path,
    bundle: Bundle,
    windows: list[WindowStats],
) -> tuple[_Probe, int]:
    """Run a detector over the topic until idle; its stats and the rows stored."""
    settings = Settings(
        topics=TopicSettings(transactions=topics.source, alerts=topics.alerts, dlq=topics.dlq),
        detect=DetectSettings(group_id=group, batch_max=150, labels=False),
    )
    store = open_store(f"sqlite:///{db}")
    store.open()

    def on_window(w: WindowStats, _stats: DetectorStats) -> None:
        windows.append(w)

    try:
        det = stream.build_detector(
            settings, bundle, store, client=client, on_window=on_window, kind=_Probe
        )
        assert isinstance(det, _Probe)
        det.run(lambda: False, idle_exit_s=4.0)
        return det, store.count_transactions()
    finally:
        store.close()


def _reference(
    engine: StateEngine, accepted: Sequence[Record], bundle: Bundle
) -> dict[str, np.ndarray[Any, Any]]:
    """Features of ``accepted`` (in production order) from one fresh engine, per tx id."""
    pay = [r for r in accepted if isinstance(r, PaySimRecord)]
    ids = [r.txId or "" for r in accepted]
    batch = (
        paysim_to_batch(pay, ids)
        if pay
        else card_to_batch([r for r in accepted if isinstance(r, CardRecord)], ids)
    )
    x = engine.update_and_extract(batch, partition_of(batch.account, PARTITIONS))
    x = x[:, [engine.feature_names.index(n) for n in bundle.feature_names]]
    return dict(zip(batch.tx_id, x, strict=True))


def _run_case(
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    bundle: Bundle,
    engine: StateEngine,
    phase_1: list[Record],
    phase_2: list[Record],
) -> None:
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=PARTITIONS)
    lateness = DEFAULT_LIMITS["card" if bundle.mode == "card" else "paysim"][1]
    bad_1, inside_1, key, part, mark = _hostile(phase_1[:-50], "p1", lateness)
    sent_1 = [*phase_1[:-50], *bad_1, inside_1, *phase_1[-50:]]
    produce_raw(client, topics.source, [(_key(r).encode(), _encode(r)) for r in sent_1])

    windows: list[WindowStats] = []
    db = tmp_path / "store.db"
    live, stored = _detector(client, topics, f"g-{unique}", db, bundle, windows)
    assert (live.stats.valid, live.stats.invalid) == (len(phase_1) + 1, len(bad_1))
    assert stored == len(phase_1) + 1  # every other record once, and the one just inside
    dead = read_topic(client, topics.dlq, expect=len(bad_1))
    reasons = {
        msgspec.json.decode(m.value())["txId"]: dict(m.headers() or [])["fraudstream.error"]
        for m in dead
    }
    assert len(dead) == len(reasons) == len(bad_1)
    assert "2100 or later" in reasons["p1-y2100"].decode()
    assert "ahead of the record's broker timestamp" in reasons["p1-y2099"].decode()
    epoch = reasons["p1-epoch"].decode()
    assert "eventTimeMs 0 (1970-01-01T00:00:00.000Z) is" in epoch
    assert f"behind partition {part}'s watermark {mark} (" in epoch
    outside = reasons["p1-outside"].decode()
    assert f"eventTimeMs {mark - lateness - 1} (" in outside
    assert f"watermark {mark} (" in outside
    # the windows advanced, never beyond the newest accepted event time
    newest = max(r.eventTimeMs or 0 for r in phase_1)
    ends = [w.window_end_ms for w in windows]
    assert ends[-1] == newest // 1000 * 1000
    assert all(a < b for a, b in zip(ends, ends[1:], strict=False))
    # no entity swept: the live state holds what one engine over the accepted records holds
    expected = _reference(engine, [*phase_1[:-50], inside_1, *phase_1[-50:]], bundle)
    if isinstance(engine, FeatureEngine):  # the card engine keeps no TTL (yet)
        assert live.entities == engine.entity_count() > 0
    in_part = partition_of([_key(r) for r in phase_1], PARTITIONS) == part
    assert live.marks[part] == max(
        r.eventTimeMs or 0 for r, mine in zip(phase_1, in_part, strict=True) if mine
    )

    # a restart: the partitions are restored from the log (the rejected records in it), and
    # so is the watermark, which judges the late records at the head of phase 2
    bad_2, inside_2, *_ = _hostile(phase_1, "p2", lateness)
    sent_2 = [*bad_2, inside_2, *phase_2]
    produce_raw(client, topics.source, [(_key(r).encode(), _encode(r)) for r in sent_2])
    again, stored = _detector(client, topics, f"g-{unique}", db, bundle, windows)
    assert (again.stats.valid, again.stats.invalid) == (len(phase_2) + 1, len(bad_2))
    assert stored == len(phase_1) + len(phase_2) + 2
    assert len(read_topic(client, topics.dlq, expect=len(bad_1) + len(bad_2))) == 2 * len(bad_1)
    expected |= _reference(engine, [inside_2, *phase_2], bundle)
    got = stored_features(db)
    assert got.keys() == expected.keys()
    for tx, want in expected.items():
        np.testing.assert_array_equal(np.asarray(got[tx][1], np.float32), want, err_msg=tx)
    assert sum(_key(r) == key for r in phase_2) > 0  # the hostile key's state is read again


def test_paysim_hostile_times_are_dead_lettered_and_restore_is_exact(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    sim = PaySimSimulator(accounts=300, seed=3, start_ms=START_MS)
    # with ids, so rows can be matched (the detector derives one from the offset otherwise)
    named = [msgspec.structs.replace(r, txId=f"tx{i}") for i, r in enumerate(sim.next_batch(4_500))]
    phase_1, phase_2 = named[:3_000], named[3_000:]
    engine = FeatureEngine(mode=bundle.mode, partitions=PARTITIONS)  # type: ignore[arg-type]
    _run_case(client, unique, tmp_path, bundle, engine, list(phase_1), list(phase_2))


def test_card_hostile_times_are_dead_lettered_and_restore_is_exact(
    client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    sim = CardSimulator(customers=100, seed=5)
    bundle = train_bundle(
        sim.history(12_000), mode="card", seed=0, gap_ms=7 * DAY_MS, partitions=PARTITIONS
    )
    phase_1, phase_2 = sim.next_batch(2_000), sim.next_batch(1_000)
    engine = CardFeatureEngine(partitions=PARTITIONS)
    _run_case(client, unique, tmp_path, bundle, engine, list(phase_1), list(phase_2))
