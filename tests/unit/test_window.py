from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.stream import SlidingWindow


def feed(w: SlidingWindow, times: list[int], amounts: list[float], fraud: list[bool]) -> None:
    w.add(
        np.array(times, dtype=np.int64),
        np.array(amounts, dtype=np.float64),
        np.array(fraud, dtype=bool),
        np.zeros(len(times), dtype=bool),
    )


def test_windows_close_at_each_step_and_slide() -> None:
    w = SlidingWindow(window_ms=3000, step_ms=1000)
    feed(w, [0, 500, 1500, 2500], [10, 20, 30, 40], [False, True, False, False])
    # the watermark's bucket [2000, 3000) may still fill: only the window ending at 2000 closed
    first = w.advance()
    assert [s.window_end_ms for s in first] == [2000]
    assert first[0].transactions == 3
    feed(w, [3100, 4200], [5, 5], [False, False])
    out = {s.window_end_ms: s for s in w.advance()}
    # window ending at 3000 covers [0, 3000): the first four
    assert out[3000].transactions == 4 and out[3000].frauds == 1
    assert out[3000].amount == 100 and out[3000].fraud_amount == 20
    assert out[3000].fraud_amount_share == 0.2
    # window ending at 4000 covers [1000, 4000)
    assert out[4000].transactions == 3 and out[4000].frauds == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20_000), st.floats(0, 1e6), st.booleans()),
        min_size=1,
        max_size=200,
    ),
    st.integers(1, 5),
)
def test_each_emitted_window_equals_a_direct_count(
    rows: list[tuple[int, float, bool]], n_batches: int
) -> None:
    rows.sort()
    times = [r[0] for r in rows]
    w = SlidingWindow(window_ms=3000, step_ms=1000)
    emitted = []
    for chunk in np.array_split(np.arange(len(rows)), n_batches):
        idx = chunk.tolist()
        feed(w, [times[i] for i in idx], [rows[i][1] for i in idx], [rows[i][2] for i in idx])
        emitted.extend(w.advance())
    ends = [s.window_end_ms for s in emitted]
    assert ends == sorted(set(ends)), "each window is emitted once, in order"
    for s in emitted:
        inside = [r for r in rows if s.window_end_ms - 3000 <= r[0] < s.window_end_ms]
        assert s.transactions == len(inside)
        assert s.frauds == sum(r[2] for r in inside)
        assert np.isclose(s.amount, sum(r[1] for r in inside))
