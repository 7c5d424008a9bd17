"""The detector end to end with the PostgreSQL store: every valid record is one row."""

from __future__ import annotations

import psycopg
import pytest

from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import PostgresStore
from fraudstream.stream import (
    DetectorTopics,
    ensure_topics,
)

from ._kafka_util import build_detector, produce_raw
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration


def test_detector_into_postgres_valid_count_equals_rows(
    client: dict[str, str], unique: str, bundle: Bundle, pg_schema: str
) -> None:
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    records = PaySimSimulator(accounts=500, seed=5).next_batch(3_000)
    produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])

    store = PostgresStore(PG_URL, schema=pg_schema)
    store.open()
    detector = build_detector(client, topics, f"g-{unique}", store, bundle, batch_max=700)
    detector.run(lambda: False, idle_exit_s=4.0)

    assert detector.stats.valid == len(records)
    assert store.count_transactions() == len(records)
    alerts = store.count_alerts_by_decision()
    assert alerts == {d: detector.stats.decisions[d] for d in ("review", "block")}
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}") as conn:
        distinct = conn.execute(
            'SELECT count(DISTINCT ("partition", "offset")) FROM transactions_enriched'
        ).fetchone()
        windows = conn.execute("SELECT count(*) FROM window_stats").fetchone()
    assert distinct == (len(records),)
    assert windows is not None and windows[0] > 0
    store.close()
