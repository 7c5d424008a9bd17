"""Drift through the real detector on the broker: windows stored, the alarm raised after a shift."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fraudstream import stream
from fraudstream.config import DetectSettings, DriftSettings, Settings, TopicSettings
from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import MixShift, PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorMetrics, DetectorTopics, ensure_topics

from ._kafka_util import produce_raw

pytestmark = pytest.mark.integration

#: The session bundle's history (tests/integration/conftest.py): 80,000 rows of this simulator.
HISTORY_ROWS = 80_000
WINDOW_MS = 10_000


def test_a_shifted_stream_writes_drift_windows_and_raises_the_alarm(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    assert bundle.drift is not None
    # the bundle's own history (its last quarter is the reference), then amounts x4 and more fraud
    history = PaySimSimulator(accounts=5_000, seed=11).history(HISTORY_ROWS)
    shift_ms = int(history.event_time_ms[-1]) + 1
    shift = MixShift(shift_ms, fraud_rate=0.05, amount_scale=4.0)
    records = PaySimSimulator(accounts=5_000, seed=11, shift=shift).next_batch(
        HISTORY_ROWS + 20_000
    )
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=1)
    produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])

    settings = Settings(
        topics=TopicSettings(transactions=topics.source, alerts=topics.alerts, dlq=topics.dlq),
        detect=DetectSettings(
            group_id=f"g-{unique}", batch_max=2_000, labels=False, snapshot_dir=tmp_path / "state"
        ),
        drift=DriftSettings(window_ms=WINDOW_MS, min_rows=500, alarm_windows=2, cold_start_ms=0),
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    metrics = DetectorMetrics()
    detector = stream.build_detector(settings, bundle, store, client=client, metrics=metrics)
    detector.run(lambda: False, idle_exit_s=4.0)
    assert detector.stats.valid == len(records)

    with sqlite3.connect(tmp_path / "store.db") as conn:
        rows = conn.execute(
            "SELECT window_end_ms, feature, psi, alarm, row_count FROM model_drift "
            "WHERE model_version = ? ORDER BY window_end_ms",
            (bundle.version,),
        ).fetchall()
    ends = sorted({r[0] for r in rows})
    assert {r[1] for r in rows} == set(bundle.drift.names)
    assert all(r[4] >= 500 for r in rows)
    alarm_at = {end for end, _, _, alarm, _ in rows if alarm}
    test_start = bundle.metrics["data"]["test_start_ms"]
    reference_windows = [e for e in ends if e - WINDOW_MS >= test_start and e <= shift_ms]
    assert reference_windows, "some windows fall inside the reference's own rows"
    score = {end: psi for end, feature, psi, _, _ in rows if feature == "score"}
    for end in reference_windows:  # the very rows of the reference: no drift
        assert score[end] < 0.05 and end not in alarm_at
    after = [e for e in ends if e > shift_ms]
    assert after and after[0] - shift_ms <= WINDOW_MS
    # the second full window after the shift raises it (two windows in a row over 0.25)
    assert min(e for e in alarm_at if e > shift_ms) <= shift_ms + 3 * WINDOW_MS
    amount = {end: psi for end, feature, psi, _, _ in rows if feature == "log_amount"}
    assert amount[after[1]] > 0.25
    assert metrics.registry.get_sample_value("fraudstream_drift_alarm") == 1.0
    assert metrics.registry.get_sample_value("fraudstream_drift_windows_total") == len(ends)
