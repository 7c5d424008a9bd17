"""Simulated labels: seeded and batch-independent, delays inside their documented ranges, shares
close to the mix's, never before their transaction; the live release order."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.errors import ConfigError
from fraudstream.schema import decode_labels, encode_label
from fraudstream.simulate import (
    Delay,
    LabelMix,
    LiveLabels,
    PaySimSimulator,
    PendingLabels,
    batch_labels,
    simulate_labels,
)

DAY = 86_400_000


def _population(n: int, fraud_every: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    ids = [f"t{i}" for i in range(n)]
    times = np.arange(n, dtype=np.int64) * 1_000 + 1_600_000_000_000
    truth = (np.arange(n) % fraud_every == 0).astype(np.int8)
    return ids, ids, times, truth


def test_same_seed_same_labels_however_the_stream_is_cut() -> None:
    whole = PaySimSimulator(accounts=500, seed=4, fraud_rate=0.05).history(6_000)
    one = batch_labels(whole, seed=4)
    sim = PaySimSimulator(accounts=500, seed=4, fraud_rate=0.05)
    cut = []
    for n in (1, 999, 3_000, 2_000):
        first = sim.emitted
        cut += batch_labels(sim.history(n), first=first, seed=4)
    assert cut == one and len(one) > 100
    assert batch_labels(whole, seed=5) != one  # another seed, other draws


def test_delays_within_ranges_and_no_label_before_its_transaction() -> None:
    mix = LabelMix()
    ids, accounts, times, truth = _population(400_000, 20)
    labels = simulate_labels(ids, accounts, times, truth, mix=mix, seed=1)
    at = dict(zip(ids, times.tolist(), strict=True))
    ranges = {
        "analyst": mix.analyst_delay,
        "chargeback": mix.chargeback_delay,
        "dispute": mix.dispute_delay,
    }
    for label in labels:
        delay = label.labelled_at_ms - at[label.tx_id]
        dist = ranges[label.source]
        assert dist.min_ms <= delay <= dist.max_ms + 1 and delay > 0
        assert label.label == 1
    assert ranges["chargeback"].min_ms == 2 * DAY and ranges["chargeback"].max_ms == 60 * DAY
    assert ranges["analyst"].max_ms <= DAY
    _, _, invalid = decode_labels([encode_label(m) for m in labels[:1000]])
    assert invalid == []


def test_shares_and_medians_close_to_the_mix_on_a_large_sample() -> None:
    mix = LabelMix()
    ids, accounts, times, truth = _population(1_000_000, 10)  # 100,000 frauds, 900,000 genuine
    labels = simulate_labels(ids, accounts, times, truth, mix=mix, seed=2)
    frauds, genuine = int(truth.sum()), int((truth == 0).sum())
    by = {s: [m for m in labels if m.source == s] for s in ("analyst", "chargeback", "dispute")}
    assert len(by["analyst"]) / frauds == pytest.approx(mix.analyst_share, abs=0.006)
    assert len(by["chargeback"]) / frauds == pytest.approx(mix.chargeback_share, abs=0.006)
    assert len(by["dispute"]) / genuine == pytest.approx(mix.dispute_share, rel=0.15)
    fraud_rows = {f"t{i}" for i in np.flatnonzero(truth)}
    assert all(m.tx_id in fraud_rows for m in by["analyst"] + by["chargeback"])
    assert not any(m.tx_id in fraud_rows for m in by["dispute"])
    start = dict(zip(ids, times.tolist(), strict=True))
    for source, dist in (("analyst", mix.analyst_delay), ("chargeback", mix.chargeback_delay)):
        delays = np.array([m.labelled_at_ms - start[m.tx_id] for m in by[source]], dtype=float)
        lo, hi = dist.cdf(dist.min_ms), dist.cdf(dist.max_ms)
        truncated_median = float(dist.quantile(np.array([0.5]))[0])
        assert lo < 0.5 < hi
        assert np.median(delays) == pytest.approx(truncated_median, rel=0.03)


def test_the_mix_and_delays_reject_nonsense() -> None:
    with pytest.raises(ConfigError):
        LabelMix(analyst_share=0.7, chargeback_share=0.4)
    with pytest.raises(ConfigError):
        Delay(median_ms=10, shape=2, min_ms=20, max_ms=30)
    assert LabelMix().unreported_share == pytest.approx(0.15)


def test_pending_labels_come_out_in_time_order_when_due() -> None:
    ids, accounts, times, truth = _population(20_000, 5)
    labels = simulate_labels(ids, accounts, times, truth, seed=3)
    pending = PendingLabels()
    pending.add(labels)
    cut = int(np.median([m.labelled_at_ms for m in labels]))
    early = pending.due(cut)
    assert all(m.labelled_at_ms <= cut for m in early)
    assert [m.labelled_at_ms for m in early] == sorted(m.labelled_at_ms for m in early)
    assert len(early) + len(pending) == len(labels)
    assert all(m.labelled_at_ms > cut for m in pending.due(2**62))


def test_live_labels_follow_their_transactions_and_match_the_file() -> None:
    fast = LabelMix(
        analyst_delay=Delay(20_000, 2.0, 1_000, 120_000),
        chargeback_delay=Delay(60_000, 2.0, 5_000, 300_000),
        dispute_delay=Delay(60_000, 2.0, 5_000, 300_000),
    )
    live = LiveLabels(mix=fast, seed=6)
    sim = PaySimSimulator(accounts=400, seed=6, fraud_rate=0.05)
    produced: set[str] = set()
    released = []
    for _ in range(60):
        records = sim.next_batch(250)
        for label in live.paysim(records):
            assert label.tx_id in produced  # its transaction went out in an earlier batch
            assert label.labelled_at_ms <= (records[0].eventTimeMs or 0)
            released.append(label)
        produced.update(r.txId or "" for r in records)
    assert len(released) > 50 and len(released) + len(live.pending) > len(released)
    file = batch_labels(
        PaySimSimulator(accounts=400, seed=6, fraud_rate=0.05).history(15_000), mix=fast, seed=6
    )
    assert sorted(released + live.pending.due(2**62), key=lambda m: m.label_id or "") == sorted(
        file, key=lambda m: m.label_id or ""
    )
