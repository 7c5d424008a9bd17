"""How far to trust a ratio of medians from a few alternated pairs of runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ratio_interval"]


def ratio_interval(
    without: Sequence[float],
    with_: Sequence[float],
    *,
    level: float = 0.9,
    resamples: int = 4_000,
    seed: int = 0,
) -> tuple[float, float]:
    """A bootstrap interval of ``median(with_) / median(without)``.

    Run *i* of each list makes a pair (the two ran next to each other, so a drift of the
    machine moves both); the pairs are resampled with replacement and the ratio of medians taken
    each time. ``level`` of the resampled ratios lie in the interval. With five pairs it is
    rough, but it shows whether a threshold is inside the noise.
    """
    a = np.asarray(without, dtype=np.float64)
    b = np.asarray(with_, dtype=np.float64)
    if len(a) != len(b) or not len(a):
        raise ValueError(f"need pairs of runs, got {len(a)} without and {len(b)} with")
    picks = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    ratios = np.median(b[picks], axis=1) / np.median(a[picks], axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)
