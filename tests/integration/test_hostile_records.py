"""Hostile records through the real detector, on SQLite and PostgreSQL: each probe ends in the
dead-letter topic with its reason, every valid record is stored once, the loop never stops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.model import Bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import PostgresStore, SQLiteStore, Store
from fraudstream.stream import DetectorTopics, ensure_topics

from ._kafka_util import build_detector, produce_raw, read_topic
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

NOW_MS = 1_733_000_000_000


def _tx(**fields: object) -> bytes:
    base: dict[str, object] = {
        "step": 1,
        "type": "TRANSFER",
        "amount": 181.0,
        "nameOrig": "C-hostile",
        "nameDest": "C-dest",
        "eventTimeMs": NOW_MS,
    }
    return json.dumps({**base, **fields}).encode()


#: probe → (raw value, a part of the DLQ reason)
PROBES: dict[str, tuple[bytes, str]] = {
    "eventTimeMs 2^63": (_tx(eventTimeMs=2**63), "$.eventTimeMs"),
    "step 2^63": (_tx(step=2**63), "$.step"),
    "eventTimeMs in microseconds": (
        _tx(eventTimeMs=1_733_000_000_000_000),
        "eventTimeMs 1733000000000000 looks like microseconds",
    ),
    "eventTimeMs in 2100": (_tx(eventTimeMs=4_102_444_800_000), "2100 or later"),
    "amount 1e308": (_tx(amount=1e308), "$.amount"),
    "balance 1e308": (_tx(oldbalanceOrg=1e308), "$.oldbalanceOrg"),
    "amount 1e400 (inf)": (_tx(amount=1)[:-1] + b', "amount": 1e400}', "Number out of range"),
    "negative amount": (_tx(amount=-5.0), "$.amount"),
    "NUL in nameOrig": (
        _tx(nameOrig="C1\x00"),
        "nameOrig contains the non-printable character U+0000",
    ),
    "newline in txId": (_tx(txId="a\nb"), "txId contains the non-printable character U+000A"),
    "RTL override in nameDest": (_tx(nameDest="C\u202e9"), "U+202E"),
    "10 KB id": (_tx(nameOrig="C" * 10_000), "$.nameOrig"),
    "nested JSON 100k deep": (
        _tx()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nested too deeply",
    ),
    "object where a number belongs": (_tx(amount={"a": [1]}), "$.amount"),
    "lone surrogate": (_tx()[:-1] + b', "txId": "\\ud800"}', "not valid JSON"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "store.db")
    else:
        s = PostgresStore(PG_URL, schema=request.getfixturevalue("pg_schema"))
    s.open()
    yield s
    s.close()


def test_hostile_records_go_to_the_dlq_and_valid_ones_are_stored_once(
    client: dict[str, str], unique: str, bundle: Bundle, store: Store
) -> None:
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    # the stream's times near the probes': the event-time guard judges them in one partition
    records = PaySimSimulator(accounts=300, seed=7, start_ms=NOW_MS).next_batch(1_500)
    valid = [(r.nameOrig.encode(), encode_paysim(r)) for r in records]
    first = _tx(txId="dup-1", amount=10.0)
    conflicting = _tx(txId="dup-1", amount=20.0)  # the same id, other content
    dup_key = b"C-hostile"  # one key: one partition, so the order is kept
    hostile = [(dup_key, raw) for raw, _ in PROBES.values()]
    items = valid[:700] + hostile + [(dup_key, first), (dup_key, first), (dup_key, conflicting)]
    produce_raw(client, topics.source, items + valid[700:])

    detector = build_detector(client, topics, f"g-{unique}", store, bundle, batch_max=400)
    detector.run(lambda: False, idle_exit_s=4.0)

    assert detector.stats.invalid == len(PROBES)
    assert detector.stats.valid == len(valid) + 3
    assert store.count_transactions() == len(valid) + 1  # dup-1 once, with amount 10
    dead = read_topic(client, topics.dlq, expect=len(PROBES) + 1)
    reasons = {
        m.value(): dict(m.headers() or [])["fraudstream.error"].decode("utf-8") for m in dead
    }
    assert len(dead) == len(PROBES) + 1
    for name, (raw, expected) in PROBES.items():
        assert expected in reasons[raw], name
    stored_rejects = [
        (v, r) for v, r in reasons.items() if v not in {p for p, _ in PROBES.values()}
    ]
    assert len(stored_rejects) == 1
    value, reason = stored_rejects[0]
    assert "txId 'dup-1' already stored with different content" in reason
    assert value is not None and json.loads(value)["amount"] == 20.0
