"""The simulator's mix change (drift tests): the same stream before it, the new mix after."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.errors import ConfigError
from fraudstream.schema import TxBatch
from fraudstream.simulate import MixShift, PaySimSimulator

HOUR_MS = 3_600_000


def _pair(shift: MixShift) -> tuple[TxBatch, TxBatch]:
    plain = PaySimSimulator(accounts=1_000, seed=3, rate_per_s=10.0)
    shifted = PaySimSimulator(accounts=1_000, seed=3, rate_per_s=10.0, shift=shift)
    return plain.history(80_000), shifted.history(80_000)


def test_the_stream_is_the_same_before_the_shift_and_changed_after() -> None:
    shift = MixShift(HOUR_MS, robots=["card_testing"], fraud_rate=0.03, amount_scale=2.0)
    plain, shifted = _pair(shift)
    a, b = plain.event_time_ms < HOUR_MS, shifted.event_time_ms < HOUR_MS
    assert a.sum() == b.sum() > 0
    for name in ("event_time_ms", "amount", "account", "label"):
        assert np.array_equal(
            np.asarray(getattr(plain, name))[a], np.asarray(getattr(shifted, name))[b]
        )
    after_plain, after = ~a, ~b
    ratio = np.median(shifted.amount[after]) / np.median(plain.amount[after_plain])
    assert 1.6 < ratio < 2.4
    assert shifted.label[after].mean() > 4 * plain.label[after_plain].mean()


def test_a_shift_with_a_bad_rate_or_scale_is_refused() -> None:
    with pytest.raises(ConfigError):
        PaySimSimulator(shift=MixShift(0, fraud_rate=0.7))
    with pytest.raises(ConfigError):
        PaySimSimulator(shift=MixShift(0, amount_scale=0.0))
