"""The dashboard's view of a stalled detector: records wait, committed offsets stand still."""

from __future__ import annotations

from fraudstream.dashboard._kafka import Lag
from fraudstream.dashboard._stall import StallTracker


def _lag(waiting: int, committed: int) -> Lag:
    return Lag("g", "tx", {0: waiting}, committed={0: committed})


def test_waiting_records_with_nothing_committed_is_a_stall_until_offsets_move() -> None:
    tracker = StallTracker(stall_after_s=20)
    assert tracker.observe(_lag(500, 1_000), now_s=0) == 0.0
    assert tracker.observe(_lag(900, 1_000), now_s=19) == 0.0
    assert tracker.observe(_lag(1_500, 1_000), now_s=25) == 25.0
    assert tracker.observe(_lag(1_400, 1_100), now_s=30) == 0.0  # committed moved
    assert tracker.observe(_lag(1_400, 1_100), now_s=45) == 0.0
    assert tracker.observe(_lag(1_400, 1_100), now_s=51) == 21.0


def test_no_lag_or_an_unknown_lag_is_no_stall() -> None:
    tracker = StallTracker(stall_after_s=5)
    assert tracker.observe(_lag(0, 7), now_s=0) == 0.0
    assert tracker.observe(_lag(0, 7), now_s=100) == 0.0
    unknown = Lag("g", "tx", {}, "broker unreachable")
    assert tracker.observe(unknown, now_s=200) == 0.0
    assert tracker.observe(_lag(3, 7), now_s=300) == 0.0  # the clock starts now
    assert tracker.observe(_lag(3, 7), now_s=306) == 6.0
