"""Card-format records through the detector: a card bundle picks the card decoder and features.

The stored features of every transaction equal an offline replay of the same records through
``CardFeatureEngine`` partitioned as the producer partitions them (by customer), which is also
how ``train --format card`` computes them; malformed records go to the dead-letter topic.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from fraudstream.features import CARD_FEATURES, CardFeatureEngine, partition_of
from fraudstream.features._card import DAY_MS
from fraudstream.model import Thresholds, train_bundle
from fraudstream.schema import card_to_batch, encode_card
from fraudstream.simulate import CardSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics, ensure_topics

from ._kafka_util import build_detector, produce_raw, read_topic
from ._procs import stored_features

pytestmark = pytest.mark.integration

PARTITIONS = 4
MALFORMED = [
    msgspec.json.encode({"customerId": "1", "terminalId": "2", "amount": 5.0}),  # no event time
    msgspec.json.encode({"step": 1, "type": "PAYMENT", "amount": 3.0, "nameOrig": "C1"}),  # PaySim
]


def test_card_records_are_scored_with_card_features(
    client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    sim = CardSimulator(customers=1_000, seed=21)
    bundle = train_bundle(
        sim.history(40_000), mode="card", seed=0, gap_ms=7 * DAY_MS, partitions=PARTITIONS
    )
    assert bundle.mode == "card"
    live = sim.next_batch(6_000)  # the days after the training history
    batch = card_to_batch(live, [r.txId or "" for r in live])
    reference = CardFeatureEngine(partitions=PARTITIONS).update_and_extract(batch)
    reference = reference[:, [CARD_FEATURES.index(n) for n in bundle.feature_names]]
    # thresholds that alert on ~1 % of the live rows, so the alert path is exercised
    scores = bundle.score(reference)
    bundle.thresholds = Thresholds(
        review=float(np.quantile(scores, 0.99)), block=float(np.quantile(scores, 0.999))
    )

    topics = DetectorTopics(f"card-{unique}", f"card-alerts-{unique}", f"card-dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=PARTITIONS)
    items: list[tuple[bytes, bytes | None]] = [
        (r.customerId.encode(), encode_card(r)) for r in live
    ]
    for n, raw in enumerate(MALFORMED):
        items.insert(1_000 * (n + 1), (b"1", raw))
    produce_raw(client, topics.source, items)

    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    store.open()
    try:
        detector = build_detector(client, topics, f"g-{unique}", store, bundle, batch_max=700)
        detector.run(lambda: False, idle_exit_s=4.0)
        alerts_stored = sum(store.count_alerts_by_decision().values())
    finally:
        store.close()

    assert detector.stats.valid == len(live)
    assert detector.stats.invalid == len(MALFORMED)
    assert len(read_topic(client, topics.dlq, expect=len(MALFORMED))) == len(MALFORMED)
    stored = stored_features(db)
    assert len(stored) == len(live)
    expected_partition = partition_of(batch.account, PARTITIONS).tolist()
    for i, tx in enumerate(batch.tx_id):
        partition, features = stored[tx]
        assert partition == expected_partition[i]
        np.testing.assert_array_equal(np.asarray(features, np.float32), reference[i], err_msg=tx)
    assert alerts_stored == detector.stats.alerts > 0
    for m in read_topic(client, topics.alerts, expect=alerts_stored):
        reasons = msgspec.json.decode(m.value())["reasons"]
        assert 0 < len(reasons) <= 3
        assert {r["feature"] for r in reasons} <= set(CARD_FEATURES)
