"""Drift: the reference's histograms, the PSI, the bundle's file and the detector's monitor."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.config import DriftSettings
from fraudstream.model import Bundle, train_bundle
from fraudstream.model._drift import (
    DRIFT_FILE,
    SCORE,
    DriftReference,
    bin_edges,
    bin_index,
    build_reference,
    psi,
    psi_by_histogram,
    search_table,
)
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream._drift import DriftMonitor, drift_monitor_for

RNG = np.random.default_rng(0)


def test_edges_give_each_value_of_a_low_cardinality_feature_its_own_bin() -> None:
    flags = np.array([0, 1, 1, 0, 0, 2], dtype=np.float32)
    edges = bin_edges(flags)
    assert edges.tolist() == [0.0, 1.0, 2.0]
    bins = bin_index(
        np.array([0, 1, 2, 3, np.nan], dtype=np.float32), search_table(edges, np.float32)
    )
    assert bins.tolist() == [0, 1, 2, 3, 4]  # 3 is above every value seen, NaN is missing


def test_a_point_mass_gets_a_bin_alone_and_the_rest_shares_the_quantiles() -> None:
    values = np.concatenate([np.zeros(6_000), RNG.lognormal(size=4_000)]).astype(np.float32)
    edges = bin_edges(values, bins=10)
    table = search_table(edges, np.float32)
    counts = np.bincount(bin_index(values, table), minlength=len(edges) + 2)
    zero_bin = int(bin_index(np.zeros(1, dtype=np.float32), table)[0])
    assert counts[zero_bin] == 6_000
    others = np.delete(counts[:-1], zero_bin)
    others = others[others > 0]
    assert len(others) == 9 and others.max() - others.min() <= 2  # equal-frequency over the rest


def test_constant_infinite_and_missing_values() -> None:
    assert bin_edges(np.full(100, 3.0)).tolist() == [3.0]
    assert bin_edges(np.array([np.nan, np.inf, -np.inf])).size == 0
    table = search_table(np.array([1.0, 2.0]))
    values = np.array([-np.inf, 1.0, 1.5, 2.5, np.inf, np.nan])
    assert bin_index(values, table).tolist() == [0, 0, 1, 2, 2, 3]


def test_psi_is_zero_on_identical_histograms_and_matches_the_formula() -> None:
    expected = np.array([0.5, 0.3, 0.2, 0.0])
    assert psi(expected, np.array([50, 30, 20, 0])) == pytest.approx(0.0)
    a = np.array([0.4, 0.4, 0.1, 0.1])
    e = np.array([0.5, 0.3, 0.2, 1e-4])  # the empty bin floored at eps
    want = float(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, np.array([40, 40, 10, 10])) == pytest.approx(want)
    assert want > 0.25  # a new value range is acted on


def test_psi_of_histograms_laid_end_to_end_equals_each_alone() -> None:
    e1, e2 = np.array([0.2, 0.8]), np.array([0.1, 0.3, 0.6])
    c1, c2 = np.array([5, 5]), np.array([1, 1, 8])
    both = psi_by_histogram(np.concatenate([e1, e2]), np.concatenate([c1, c2]), np.array([0, 2]))
    assert both.tolist() == pytest.approx([psi(e1, c1), psi(e2, c2)])


def test_reference_leaves_calendar_features_out_and_round_trips(tmp_path: Path) -> None:
    x = RNG.normal(size=(5_000, 3)).astype(np.float32)
    ref = build_reference(x, RNG.random(5_000), ["a", "hour_of_day", "b"])
    assert ref.names == ("a", "b", SCORE) and ref.columns == (0, 2, -1)
    assert all(s.sum() == pytest.approx(1.0) for s in ref.shares)
    assert len(ref.edges[-1]) > len(ref.edges[0])  # the score's tail edges
    ref.save(tmp_path)
    back = DriftReference.load(tmp_path)
    assert back is not None and back.names == ref.names
    assert all(np.array_equal(a, b) for a, b in zip(back.edges, ref.edges, strict=True))
    assert DriftReference.load(tmp_path / "elsewhere") is None


def _reference(n: int = 20_000) -> tuple[DriftReference, np.ndarray, np.ndarray]:
    x = np.column_stack([RNG.lognormal(size=n), RNG.integers(0, 3, n)]).astype(np.float32)
    score = RNG.beta(0.5, 20, n)
    return build_reference(x, score, ["amount", "kind"]), x, score


def _stream(n: int, start_ms: int, span_ms: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    t = np.sort(RNG.integers(start_ms, start_ms + span_ms, n)).astype(np.int64)
    x = np.column_stack([RNG.lognormal(size=n) * scale, RNG.integers(0, 3, n)]).astype(np.float32)
    return t, x, RNG.beta(0.5, 20, n)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 2_999), max_size=8, unique=True))
def test_monitor_counts_like_a_recomputation_however_the_stream_is_cut_and_mixed(
    cuts: list[int],
) -> None:
    ref, _, _ = _reference(5_000)
    t, x, s = _stream(3_000, 0, 5 * 60_000)
    monitor = DriftMonitor(ref, model_version="v", window_ms=60_000, min_rows=1)
    closed = []
    bounds = [0, *sorted(cuts), 3_000]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        mixed = lo + RNG.permutation(hi - lo)  # partitions interleave a batch's event times
        closed += monitor.add(t[mixed], x[mixed], s[mixed])
    assert [w.window_end_ms for w in closed] == [60_000, 120_000, 180_000, 240_000]
    for w in closed:
        rows = (t >= w.window_end_ms - 60_000) & (t < w.window_end_ms)
        assert w.rows == rows.sum()
        for h, name in enumerate(ref.names):
            v = s[rows] if name == SCORE else x[rows, ref.columns[h]]
            table = search_table(ref.edges[h], v.dtype)
            counts = np.bincount(bin_index(v, table), minlength=len(ref.shares[h]))
            assert w.psi[w.names.index(name)] == pytest.approx(psi(ref.shares[h], counts))


def test_alarm_after_consecutive_windows_over_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref, _, _ = _reference()
    monitor = DriftMonitor(
        ref, model_version="v", window_ms=60_000, min_rows=500, threshold=0.25, alarm_windows=2
    )
    windows = []
    for minute in range(6):
        scale = 1.0 if minute < 3 else 4.0  # amounts x4 from the 4th minute on
        windows += monitor.add(*_stream(2_000, minute * 60_000, 60_000, scale))
    windows += monitor.add(*_stream(10, 6 * 60_000, 1_000))  # closes the 6th minute
    assert [w.alarm for w in windows] == [False, False, False, False, True, True]
    assert max(max(w.psi) for w in windows[:3]) < 0.1
    assert windows[3].over == ("amount",) and windows[3].psi[0] > 0.25
    assert "drift alarm" in caplog.text and "amount=" in caplog.text
    assert monitor.alarm and monitor.evaluated == 6


def test_late_rows_and_small_windows_are_left_out() -> None:
    ref, _, _ = _reference()
    monitor = DriftMonitor(ref, model_version="v", window_ms=60_000, min_rows=100)
    assert monitor.add(*_stream(50, 0, 60_000)) == []
    closed = monitor.add(*_stream(200, 60_000, 60_000))
    assert closed == []  # the first minute had 50 rows: not evaluated
    monitor.add(*_stream(30, 0, 60_000))  # its window is closed
    assert monitor.late == 30
    assert [w.window_end_ms for w in monitor.add(*_stream(5, 120_000, 1_000))] == [120_000]


@pytest.fixture(scope="module")
def small_bundle() -> Bundle:
    return train_bundle(
        PaySimSimulator(accounts=2_000, seed=3).history(40_000), seed=0, gap_ms=5_000
    )


def test_a_trained_bundle_saves_and_loads_its_reference(
    small_bundle: Bundle, tmp_path: Path
) -> None:
    assert small_bundle.drift is not None and SCORE in small_bundle.drift.names
    assert "hour_of_day" not in small_bundle.drift.names
    path = small_bundle.save(tmp_path)
    assert (path / DRIFT_FILE).exists()
    loaded = Bundle.load(path)
    assert loaded.drift is not None and loaded.drift.names == small_bundle.drift.names
    assert isinstance(drift_monitor_for(loaded, DriftSettings()), DriftMonitor)
    assert drift_monitor_for(loaded, DriftSettings(enabled=False)) is None


def test_a_bundle_without_or_with_a_broken_reference_is_served_unmonitored(
    small_bundle: Bundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_bundle.save(tmp_path)
    (path / DRIFT_FILE).unlink()
    bare = Bundle.load(path)
    assert bare.drift is None
    with caplog.at_level(logging.INFO):
        assert drift_monitor_for(bare, DriftSettings()) is None
    assert "no drift monitoring" in caplog.text
    (path / DRIFT_FILE).write_text("{not json")
    assert Bundle.load(path).drift is None
    assert "without drift monitoring" in caplog.text


def test_the_metrics_follow_the_monitor_in_service() -> None:
    from fraudstream.stream import DetectorMetrics

    ref, _, _ = _reference()
    monitor = DriftMonitor(ref, model_version="v", window_ms=60_000, min_rows=100, alarm_windows=1)
    metrics = DetectorMetrics()
    served: list[DriftMonitor | None] = [None]
    metrics.follow_drift(lambda: served[0])
    assert metrics.registry.get_sample_value("fraudstream_drift_alarm") is None  # unmonitored
    served[0] = monitor
    assert metrics.registry.get_sample_value("fraudstream_drift_alarm") == 0.0
    monitor.add(*_stream(1_000, 0, 60_000, 4.0))
    (window,) = monitor.add(*_stream(10, 60_000, 1_000))
    sample = metrics.registry.get_sample_value
    assert sample("fraudstream_drift_alarm") == 1.0
    assert sample("fraudstream_drift_windows_total") == 1.0
    assert sample("fraudstream_drift_psi", {"feature": "amount"}) == window.psi[0] > 0.25


def test_warm_up_counts_nothing() -> None:
    ref, _, _ = _reference()
    monitor = DriftMonitor(ref, model_version="v", window_ms=60_000, min_rows=1)
    monitor.warm_up()
    monitor.add(*_stream(100, 0, 60_000))
    (window,) = monitor.add(*_stream(1, 60_000, 1))
    assert window.rows == 100


def test_no_alarm_while_the_state_is_cold() -> None:
    """Windows ending within ``cold_start_ms`` of the first row are evaluated, never alarmed on;
    the same drift alarms once past it."""
    ref, _, _ = _reference()
    monitor = DriftMonitor(
        ref, model_version="v", window_ms=60_000, min_rows=100, alarm_windows=1,
        cold_start_ms=120_000,
    )  # fmt: skip
    closed = []
    for minute in range(4):  # every window drifted (amounts x4)
        closed += monitor.add(*_stream(500, minute * 60_000, 60_000, 4.0))
    closed += monitor.add(*_stream(1, 4 * 60_000, 1))
    assert [w.window_end_ms for w in closed] == [60_000, 120_000, 180_000, 240_000]
    assert all(w.psi[0] > 0.25 for w in closed)
    assert [w.alarm for w in closed] == [False, False, True, True]
    assert closed[0].over == ()
