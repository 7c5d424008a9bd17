"""The event-time guard: skew against broker time, lateness against the partition's watermark
(the largest accepted event time so far, in offset order), checked against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudstream.errors import ConfigError
from fraudstream.stream import EventTimeGuard

SKEW = 1_000
LATE = 5_000
NOW = 1_700_000_000_000


def check(
    guard: EventTimeGuard,
    times: list[int],
    broker: list[int] | None = None,
    parts: list[int] | None = None,
) -> list[int]:
    """The rejected rows (sorted) of one batch."""
    n = len(times)
    ts = np.array(broker if broker is not None else [NOW] * n, dtype=np.int64)
    p = np.array(parts if parts is not None else [0] * n, dtype=np.int32)
    return sorted(guard.check(np.array(times, dtype=np.int64), ts, p))


def brute(
    rows: list[tuple[int, int, int]], skew: int, lateness: int, marks: dict[int, int]
) -> list[bool]:
    """Per row (event time, broker time, partition), in order: rejected? (updates ``marks``)."""
    out = []
    for t, ts, p in rows:
        ahead = ts > 0 and t - ts > skew
        late = p in marks and t < marks[p] - lateness
        out.append(ahead or late)
        if not (ahead or late):
            marks[p] = max(marks.get(p, t), t)
    return out


def test_running_maximum_in_batch_order() -> None:
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=LATE)
    base = NOW - 100_000
    times = [base, base - LATE - 1, base + 20_000, base + 15_001, base + 14_999, base + 30_000]
    assert check(g, times) == [1, 4]
    assert g.watermarks() == {0: base + 30_000}
    # the next batch is judged against the watermark the previous one left
    assert check(g, [base + 24_999, base + 25_000]) == [0]


def test_boundaries_of_skew_and_lateness() -> None:
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=LATE)
    # exactly max_future_skew ahead passes, one ms more does not; no broker time: no skew bound
    assert check(g, [NOW + SKEW, NOW + SKEW + 1, NOW + 10 * SKEW], [NOW, NOW, -1]) == [1]
    mark = NOW + 10 * SKEW
    assert g.watermarks() == {0: mark}
    # exactly max_lateness behind the watermark passes, one ms more does not
    assert check(g, [mark - LATE, mark - LATE - 1], [mark, mark]) == [1]


def test_partitions_have_their_own_watermarks() -> None:
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=LATE)
    old = NOW - 10 * LATE
    assert check(g, [NOW, old, old, NOW - LATE - 1], parts=[1, 2, 1, 2]) == [2]
    assert g.watermarks() == {1: NOW, 2: NOW - LATE - 1}
    g.drop_partitions([1])
    assert check(g, [old], parts=[1]) == []  # a dropped partition starts afresh
    g.restore_watermarks({1: NOW})
    assert check(g, [old], parts=[1]) == [0]


def test_rejected_rows_never_move_the_watermark() -> None:
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=LATE)
    year_2100 = 4_102_444_800_000
    # a record far ahead of its broker time, then on-time ones: the watermark ignores it
    assert check(g, [year_2100, NOW, 0, NOW - LATE]) == [0, 2]
    assert g.watermarks() == {0: NOW}
    # a partition whose every record is rejected gets no watermark at all
    assert check(g, [year_2100], parts=[3]) == [0]
    assert 3 not in g.watermarks()


def test_reasons_name_both_times_and_the_limit() -> None:
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=3_600_000)
    bad = g.check(
        np.array([NOW, 0, NOW + 2 * 3_600_000], dtype=np.int64),
        np.full(3, NOW, dtype=np.int64),
        np.full(3, 4, dtype=np.int32),
    )
    assert set(bad) == {1, 2}
    late = bad[1]
    assert "eventTimeMs 0 (1970-01-01T00:00:00.000Z)" in late
    assert f"partition 4's watermark {NOW} (2023-11-14T22:13:20.000Z" in late
    assert "at most 1 h allowed" in late
    assert f"is 2.0 h ahead of the record's broker timestamp {NOW}" in bad[2]


def test_lateness_below_skew_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_lateness_ms"):
        EventTimeGuard(max_future_skew_ms=LATE, max_lateness_ms=SKEW)
    with pytest.raises(ConfigError):
        EventTimeGuard(max_future_skew_ms=-1, max_lateness_ms=SKEW)


rows_st = st.lists(
    st.tuples(
        st.integers(NOW - 4 * LATE, NOW + 4 * SKEW),  # event time
        st.sampled_from([NOW, NOW - 2 * SKEW, NOW + LATE, 0, -1]),  # broker time
        st.integers(0, 2),  # partition
    ),
    max_size=60,
)


@given(rows=rows_st, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_any_batching_gives_the_decisions_of_a_row_by_row_loop(
    rows: list[tuple[int, int, int]], cuts: list[int]
) -> None:
    """What the live detector (small batches) and the restorer (large ones) both rely on."""
    g = EventTimeGuard(max_future_skew_ms=SKEW, max_lateness_ms=LATE)
    got: list[bool] = []
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        chunk = rows[lo:hi]
        rejected = check(g, [r[0] for r in chunk], [r[1] for r in chunk], [r[2] for r in chunk])
        got += [j in rejected for j in range(len(chunk))]
    marks: dict[int, int] = {}
    assert got == brute(rows, SKEW, LATE, marks)
    assert g.watermarks() == marks
