"""Simulated labels: seeded and batch-independent, delays inside their documented ranges, shares
close to the mix's, never before their transaction; the live release order."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np
import pytest

from fraudstream.cli._labels import LabelFeed
from fraudstream.errors import ConfigError
from fraudstream.schema import (
    PaySimRecord,
    decode_label,
    decode_labels,
    encode_label,
    encode_paysim,
)
from fraudstream.simulate import (
    LABEL_COLUMNS,
    CardSimulator,
    Delay,
    LabelMix,
    LiveLabels,
    PaySimSimulator,
    PendingLabels,
    batch_labels,
    label_table,
    simulate_labels,
)
from fraudstream.stream import produce_messages

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


FAST = LabelMix(  # seconds instead of hours and days, so a short stream releases labels
    analyst_delay=Delay(20_000, 2.0, 1_000, 120_000),
    chargeback_delay=Delay(60_000, 2.0, 5_000, 300_000),
    dispute_delay=Delay(60_000, 2.0, 5_000, 300_000),
)


def test_labels_carry_their_transactions_account_counterparty_and_time() -> None:
    batch = PaySimSimulator(accounts=400, seed=6, fraud_rate=0.05).history(5_000)
    labels = batch_labels(batch, seed=6)
    row = {t: i for i, t in enumerate(batch.tx_id)}
    assert len(labels) > 50
    for m in labels:
        i = row[m.tx_id]
        assert (m.account, m.counterparty) == (batch.account[i], batch.counterparty[i])
        assert m.tx_time_ms == int(batch.event_time_ms[i]) < m.labelled_at_ms
    table = label_table(labels)
    assert tuple(table.column_names) == LABEL_COLUMNS
    assert table["counterparty"].to_pylist()[0] is not None


def test_live_labels_follow_their_transactions_and_match_the_file() -> None:
    live = LiveLabels(mix=FAST, seed=6)
    sim = PaySimSimulator(accounts=400, seed=6, fraud_rate=0.05)
    produced: dict[str, PaySimRecord] = {}
    released = []
    for _ in range(60):
        records = sim.next_batch(250)
        live.hold_paysim(records)
        for rec in records:
            t = rec.eventTimeMs or 0
            for label in live.due(t):
                tx = produced[label.tx_id]  # its transaction went out before
                assert label.labelled_at_ms <= t  # and no transaction at or after its time
                assert (label.account, label.counterparty) == (tx.nameOrig, tx.nameDest)
                assert label.tx_time_ms == tx.eventTimeMs
                released.append(label)
            produced[rec.txId or ""] = rec
    assert len(released) > 50 and len(live.pending) > 0
    file = batch_labels(
        PaySimSimulator(accounts=400, seed=6, fraud_rate=0.05).history(15_000), mix=FAST, seed=6
    )
    assert sorted(released + live.pending.due(2**62), key=lambda m: m.label_id or "") == sorted(
        file, key=lambda m: m.label_id or ""
    )


def test_live_card_labels_name_the_customer_and_the_terminal() -> None:
    live = LiveLabels(mix=FAST, seed=2)
    records = CardSimulator(customers=300, seed=2).next_batch(20_000)
    live.hold_card(records)
    labels = live.due(2**62)
    by_id = {r.txId: r for r in records}
    assert len(labels) > 20
    for m in labels:
        tx = by_id[m.tx_id]
        assert tx.isFraud == 1 or m.source == "dispute"
        assert (m.account, m.counterparty, m.tx_time_ms) == (
            tx.customerId,
            tx.terminalId,
            tx.eventTimeMs,
        )


class FakeProducer:
    """Records what is produced, in order; every delivery succeeds."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        on_delivery: Callable[[object, object], None],
        timestamp: int | None = None,
    ) -> None:
        self.sent.append((topic, key, value, timestamp))
        on_delivery(None, None)

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def check_label_order(sent: list[tuple[str, bytes, bytes, int | None]], labels_topic: str) -> int:
    """Every label follows its transaction and precedes each transaction at or after its time;
    key = account, Kafka timestamp = label time. Returns how many labels."""
    seen: set[str] = set()
    latest = -1  # the latest event time produced so far
    count = 0
    for topic, key, value, timestamp in sent:
        if topic != labels_topic:
            record = json.loads(value)
            seen.add(str(record.get("txId") or record.get("TRANSACTION_ID")))
            latest = max(latest, record["eventTimeMs"])
            continue
        label = decode_label(value)
        assert label.tx_id in seen and latest < label.labelled_at_ms
        assert key == (label.account or "").encode() and timestamp == label.labelled_at_ms
        count += 1
    return count


def test_the_live_feed_produces_each_label_before_any_later_transaction() -> None:
    producer = FakeProducer()
    live = LiveLabels(mix=FAST, seed=3)
    feed = LabelFeed(producer, "labels", live.pending)
    sim = PaySimSimulator(accounts=400, seed=3, fraud_rate=0.05)

    def next_messages(n: int) -> list[tuple[bytes, bytes, int]]:
        records = sim.next_batch(n)
        live.hold_paysim(records)
        return [(r.nameOrig.encode(), encode_paysim(r), r.eventTimeMs or 0) for r in records]

    sent = produce_messages(
        producer,  # type: ignore[arg-type]
        "tx",
        next_messages,
        chunk=700,
        count=20_000,
        wait_until=feed.before,
    )
    feed.check()
    assert sent == 20_000 and check_label_order(producer.sent, "labels") == feed.produced > 100


def use_fake_kafka(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    """The simulate and replay commands with no broker: what they produce lands in a list."""
    from fraudstream.cli import _replay, _simulate

    producer = FakeProducer()
    for module in (_simulate, _replay):
        monkeypatch.setattr(module, "kafka_client", lambda _settings: {})
        monkeypatch.setattr(module, "ensure_topics", lambda *_a, **_k: None)
        monkeypatch.setattr(module, "make_producer", lambda *_a, **_k: producer)
    monkeypatch.setattr(_simulate, "LiveLabels", lambda **kw: LiveLabels(mix=FAST, **kw))
    monkeypatch.setenv("FRAUDSTREAM_TOPICS__LABELS", "fraud-labels")
    return producer


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    return use_fake_kafka(monkeypatch)


@pytest.mark.parametrize("fmt", ["paysim", "card"])
def test_simulate_produces_labels_by_default_in_order(fake_kafka: FakeProducer, fmt: str) -> None:
    from typer.testing import CliRunner

    from fraudstream.cli._app import app  # the fixture's imports registered the commands

    args = ["simulate", "--format", fmt, "--rate", "0", "--count", "20000", "--fraud-rate", "0.03"]
    result = CliRunner().invoke(app, [*args, "--topic", "tx", "--accounts", "500"])
    assert result.exit_code == 0, result.output
    produced = check_label_order(fake_kafka.sent, "fraud-labels")
    assert produced > 20 and f"produced {produced:,} labels to fraud-labels" in result.output
    first = json.loads(fake_kafka.sent[0][2])
    if fmt == "paysim":  # the stream's start in the id: another run does not reuse stored ids
        assert re.fullmatch(r"sim-\d+-\d{13}-0", first["txId"])
    fake_kafka.sent.clear()
    result = CliRunner().invoke(app, [*args, "--topic", "tx", "--no-labels"])
    assert result.exit_code == 0 and {t for t, *_ in fake_kafka.sent} == {"tx"}
