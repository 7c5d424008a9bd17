"""The bootstrap interval of a ratio of medians from alternated pairs of runs."""

from __future__ import annotations

import pytest

from fraudstream.bench._paired import ratio_interval


def test_an_interval_holds_the_ratio_and_narrows_with_agreeing_pairs() -> None:
    without = [80_000.0, 84_000.0, 78_000.0, 90_000.0, 83_000.0]
    noisy = [70_000.0, 79_000.0, 66_000.0, 85_000.0, 74_000.0]
    steady = [w * 0.9 for w in without]
    low, high = ratio_interval(without, noisy)
    assert low < 74_000 / 83_000 < high
    s_low, s_high = ratio_interval(without, steady)
    assert s_low == pytest.approx(0.9) and s_high == pytest.approx(0.9)
    assert high - low > 0.05  # noisy pairs leave a wide interval


def test_the_interval_is_reproducible_and_needs_pairs() -> None:
    assert ratio_interval([1.0, 2.0, 3.0], [1.0, 1.5, 3.3]) == ratio_interval(
        [1.0, 2.0, 3.0], [1.0, 1.5, 3.3]
    )
    with pytest.raises(ValueError, match="pairs"):
        ratio_interval([1.0, 2.0], [1.0])
