"""The detector against the real broker: dead letters, scoring, alerts and the store."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import (
    Detector,
    DetectorTopics,
    ensure_topics,
)

from ._kafka_util import build_detector, produce_raw, read_topic

pytestmark = pytest.mark.integration

VALID = {"step": 1, "type": "PAYMENT", "amount": 12.5, "nameOrig": "C1", "nameDest": "M2"}
MALFORMED: list[tuple[bytes, str]] = [
    (b"{not json", "not valid JSON"),
    (
        msgspec.json.encode({k: v for k, v in VALID.items() if k != "amount"}),
        "missing required field",
    ),
    (msgspec.json.encode({**VALID, "amount": -3.0}), "$.amount"),
    (msgspec.json.encode({**VALID, "amount": "12.5"}), "got `str`"),
]


def run_detector(
    client: dict[str, str], topics: DetectorTopics, group: str, store_url: str, bundle: Bundle
) -> Detector:
    store = open_store(store_url)
    store.open()
    detector = build_detector(client, topics, group, store, bundle, batch_max=500)
    detector.run(lambda: False, idle_exit_s=4.0)
    return detector


def test_malformed_messages_go_to_the_dlq_and_every_valid_one_is_scored(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    records = PaySimSimulator(accounts=500, seed=3).next_batch(2_000)
    items: list[tuple[bytes, bytes | None]] = [
        (r.nameOrig.encode(), encode_paysim(r)) for r in records
    ]
    for n, (raw, _) in enumerate(MALFORMED):  # spread the bad ones among the good ones
        items.insert(300 * (n + 1), (b"C1", raw))
    produce_raw(client, topics.source, items)

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    detector = run_detector(client, topics, f"g-{unique}", store_url, bundle)

    assert detector.stats.valid == len(records)
    assert detector.stats.invalid == len(MALFORMED)
    dead = read_topic(client, topics.dlq, expect=len(MALFORMED))
    assert len(dead) == len(MALFORMED)
    by_value = {m.value(): dict(m.headers() or []) for m in dead}
    for raw, expected in MALFORMED:
        headers = by_value[raw]
        assert expected in headers["fraudstream.error"].decode()
        assert headers["fraudstream.source"].decode().startswith(f"{topics.source}/")

    store = open_store(store_url)
    store.open()
    try:
        assert store.count_transactions() == len(records)
        stored_alerts = sum(store.count_alerts_by_decision().values())
    finally:
        store.close()
    assert stored_alerts == detector.stats.alerts > 0
    alerts = read_topic(client, topics.alerts, expect=stored_alerts)
    messages = [msgspec.json.decode(m.value()) for m in alerts]
    ids = [m["alert_id"] for m in messages]
    assert len(ids) == len(set(ids)) == stored_alerts
    # every alert is explained: its reason codes name the bundle's features, largest first
    for m in messages:
        reasons = m["reasons"]
        assert 0 < len(reasons) <= 3
        assert {r["feature"] for r in reasons} <= set(bundle.feature_names)
        contributions = [r["contribution"] for r in reasons]
        assert contributions == sorted(contributions, reverse=True)
