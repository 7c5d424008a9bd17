"""No poison pill: hostile bytes on the transactions and labels topics, through the real detector.

One detector per record format (PaySim on PostgreSQL, card on SQLite) runs on its own thread
for the whole module, reading its transactions topic and a labels topic. Each round produces a
fixed corpus of nasty records or a Hypothesis-generated mix (seeded, derandomized) interleaved
with valid ones, plus hostile and valid labels, then a valid sentinel per partition, and checks
while the same loop keeps running:

- the loop is alive and every record is accounted for exactly once: a record the decoder accepts
  is stored once under its id (the ones valid by construction must be) or dead-lettered with a
  reason by a later check (the event-time guard); one it rejects is in the dead-letter topic,
  at its partition and offset, with the decoder's reason;
- every malformed label is in the dead-letter topic with its reason, every label is read;
- the group's committed offsets reach the end of every partition.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fraudstream.features._card import DAY_MS
from fraudstream.model import Bundle, train_bundle
from fraudstream.schema import decode_card, decode_labels, decode_paysim
from fraudstream.simulate import CardSimulator
from fraudstream.sinks import PostgresStore, SQLiteStore, Store
from fraudstream.stream import Detector, DetectorTopics, ensure_topics
from fraudstream.stream._detector import DLQ_TRUNCATE_BYTES
from tests._hostile import MALFORMED, TOKENS, VALUES, any_value, obj, token

from ._kafka_util import build_detector
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

PARTITIONS = 2
ID = "@ID@"  # a record's txId, made unique when produced (see _stamp)
TIME = 1_111_111_111_111  # a record's eventTimeMs, made increasing when produced
TX_FIELDS = {"paysim": "nameOrig", "card": "customerId"}
DECODE = {"paysim": decode_paysim, "card": decode_card}
WAIT_S = 30.0
#: The largest value without key or headers librdkafka's default ``message.max.bytes``
#: (1,000,000) lets a producer send: the rest is record overhead.
LARGEST_VALUE = 999_964


def _now_ms() -> int:
    return int(time.time() * 1000)


def _base(fmt: str) -> dict[str, Any]:
    """A valid record of ``fmt`` (what the hostile values are put into)."""
    if fmt == "paysim":
        return {"step": 1, "type": "TRANSFER", "amount": 5.0, "nameOrig": "C-fz", "nameDest": "M1",
                "txId": ID, "eventTimeMs": TIME}  # fmt: skip
    return {"customerId": "C-fz", "terminalId": "T1", "amount": 5.0, "eventTimeMs": TIME,
            "txId": ID}  # fmt: skip


def _valid(fmt: str, n: int) -> list[bytes | None]:
    return [obj([(k, token(v)) for k, v in _base(fmt).items()])] * n


#: per field, the corpus tokens a record may hold there (in an unknown field: any JSON)
ACCEPTED = {
    "id": {"emoji id"},
    "amount": {"-0.0", "5e-324", "5000 decimals"},  # 0.0 once parsed
    "eventTimeMs": {"null"},  # PaySim's is optional; the card format's is not
    "txId": {"null", "emoji id"},  # without an id, the detector derives one
    "x": set(TOKENS) - MALFORMED,
}


def corpus(fmt: str) -> list[tuple[bytes | None, bool]]:
    """(value, valid?) for every corpus value, and every corpus token in the fields that
    matter and in an unknown one, and a few large values far below the broker's limit."""
    base = _base(fmt)
    items = [(k, token(v)) for k, v in base.items()]
    out: list[tuple[bytes | None, bool]] = [(v, False) for v in VALUES.values()]
    for name in [TX_FIELDS[fmt], "amount", "eventTimeMs", "txId", "x"]:
        accepted = ACCEPTED["id" if name == TX_FIELDS[fmt] else name]
        if name == "eventTimeMs" and fmt == "card":
            accepted = set()
        for what, raw in TOKENS.items():
            out.append((obj([i for i in items if i[0] != name] + [(name, raw)]), what in accepted))
    pad = token("p" * 500_000)
    out += [
        (obj([*items, ("amount", TOKENS["1e308"])]), False),  # a duplicated key: the last counts
        (obj([*items, ("pad", pad)]), True),  # ignored, however large
        (obj([*items, ("amount", pad)]), False),
    ]
    return out


@dataclass
class Sent:
    key: bytes | None
    value: bytes | None
    partition: int = -1
    offset: int = -1
    timestamp_ms: int = -1


def produce(client: dict[str, str], topic: str, sent: Sequence[Sent]) -> None:
    """Produce ``sent`` in order, recording where each landed."""
    producer = Producer({**client, "linger.ms": 5})

    def landed(item: Sent) -> Callable[[Any, Message], None]:
        def on_delivery(err: Any, msg: Message) -> None:
            assert err is None, err
            item.partition, item.offset = msg.partition() or 0, msg.offset() or 0
            item.timestamp_ms = msg.timestamp()[1]

        return on_delivery

    for item in sent:
        producer.produce(topic, key=item.key, value=item.value, on_delivery=landed(item))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert all(item.offset >= 0 for item in sent)


@dataclass
class Running:
    """A detector looping on its own thread, and what the test reads beside it."""

    fmt: str
    client: dict[str, str]
    topics: DetectorTopics
    labels: str
    group: str
    detector: Detector
    reader: Store  # a second connection to the detector's store
    dlq: Consumer
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None
    stored: int = 0
    labels_sent: int = 0
    labels_invalid: int = 0
    round: int = 0

    def start(self) -> None:
        def loop() -> None:
            try:
                self.detector.run(self.stop.is_set)
            except BaseException as exc:  # the test reports it: the loop must not stop
                self.errors.append(exc)

        self.thread = threading.Thread(target=loop, name=f"detector-{self.fmt}", daemon=True)
        self.thread.start()

    def alive(self) -> None:
        assert not self.errors, f"the detector stopped: {self.errors[0]!r}"
        assert self.thread is not None and self.thread.is_alive()

    def dead_letters(self, expect: int, timeout_s: float = WAIT_S) -> list[Message]:
        """The next ``expect`` dead letters (and any beyond them within half a second)."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            self.alive()
            out += [m for m in self.dlq.consume(1000, timeout=0.2) if m.error() is None]
        out += [m for m in self.dlq.consume(1000, timeout=0.5) if m.error() is None]
        return out


def _dlq_consumer(client: dict[str, str], topic: str) -> Consumer:
    consumer = Consumer({**client, "group.id": f"fz-read-{uuid.uuid4().hex[:8]}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    return consumer


@pytest.fixture(scope="module")
def card_bundle() -> Bundle:
    sim = CardSimulator(customers=300, seed=5)
    return train_bundle(
        sim.history(8_000), mode="card", seed=0, gap_ms=7 * DAY_MS, partitions=PARTITIONS
    )


def _store(fmt: str, tmp: Path, schema: str) -> tuple[Store, Store]:
    """(the detector's store, a second connection for the test's reads)."""
    if fmt == "paysim":
        return PostgresStore(PG_URL, schema=schema), PostgresStore(PG_URL, schema=schema)
    return SQLiteStore(tmp / "store.db"), SQLiteStore(tmp / "store.db")


@pytest.fixture(scope="module", params=["paysim", "card"])
def running(
    request: pytest.FixtureRequest,
    bootstrap: str,
    bundle: Bundle,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    fmt: str = request.param
    client = {"bootstrap.servers": bootstrap}
    u = uuid.uuid4().hex[:10]
    topics = DetectorTopics(f"fz-tx-{u}", f"fz-alerts-{u}", f"fz-dlq-{u}")
    labels = f"fz-labels-{u}"
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq, labels], partitions=PARTITIONS)
    schema = f"fs_test_fz_{u}"
    store, reader = _store(fmt, tmp_path_factory.mktemp("fz"), schema)
    store.open()
    reader.open()
    chosen = request.getfixturevalue("card_bundle") if fmt == "card" else bundle
    detector = build_detector(client, topics, f"g-{u}", store, chosen, batch_max=300, labels=labels)
    run = Running(
        fmt, client, topics, labels, f"g-{u}", detector, reader, _dlq_consumer(client, topics.dlq)
    )
    run.start()
    try:
        yield run
    finally:
        run.stop.set()
        if run.thread is not None:
            run.thread.join(60)
        run.dlq.close()
        reader.close()
        store.close()
        if fmt == "paysim":
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- one round ----------------------------------------------------------------------------


def _stamp(values: Sequence[bytes | None], tag: str, t0_ms: int) -> list[bytes | None]:
    """The placeholders of each value made real: the id ``tag-position``, the event time
    ``t0_ms + position`` (increasing: the card format's event-time guard allows no lateness)."""
    out = []
    for i, v in enumerate(values):
        if v is not None:
            v = v.replace(token(ID), token(f"{tag}-{i}")).replace(token(TIME), token(t0_ms + i))
        out.append(v)
    return out


def _where(item: Sent) -> str:
    return f"{item.partition}/{item.offset}"


def _headers(m: Message) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in (m.headers() or [])}


def play(
    run: Running,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None],
    labels: Sequence[bytes | None],
    must_store: Sequence[int],
    must_die: Sequence[int] = (),
) -> None:
    """One round: ``values`` (those at ``must_store`` valid by construction, those at
    ``must_die`` invalid by construction) with ``keys``,
    ``labels`` on the labels topic, a sentinel per partition; then every check of the module."""
    run.round += 1
    tag = f"r{run.round}"
    t0 = _now_ms() - 60_000  # behind the broker timestamps: the card format allows no skew
    values = _stamp(values, tag, t0)
    sent = [Sent(k, v) for k, v in zip(keys, values, strict=True)]
    ends = _stamp(_valid(run.fmt, 8), f"{tag}-end", t0 + len(values))  # 8 keys: 2 partitions
    sentinels = [Sent(f"s{i}".encode(), v) for i, v in enumerate(ends)]
    label_sent = [Sent(b"C-fz", v) for v in labels]
    produce(run.client, run.labels, label_sent)
    produce(run.client, run.topics.source, sent + sentinels)
    assert {s.partition for s in sentinels} == set(range(PARTITIONS))
    every = sent + sentinels
    run.labels_sent += len(label_sent)

    # first the loop: it stores the valid records and the sentinels behind every hostile one
    tagged = [i for i in must_store if token(f"{tag}-{i}") in (values[i] or b"")]
    required = {f"{tag}-{i}" for i in tagged} | {f"{tag}-end-{i}" for i in range(len(ends))}
    found = _wait_stored(run, sorted(required))
    assert required <= found, f"valid records not stored: {sorted(required - found)[:5]}"

    # then the decoder's verdict on each record, at the broker timestamp it got
    records, positions, invalid = DECODE[run.fmt](
        [s.value for s in every], [s.timestamp_ms for s in every]
    )
    ids = {
        i: r.txId
        or f"{run.topics.source}/{every[i].partition}/{every[i].offset}@{every[i].timestamp_ms}"
        for r, i in zip(records, positions, strict=True)
    }
    must = [*must_store, *range(len(sent), len(every))]
    assert not [every[i].value for i in must if i not in ids], "the decoder rejects valid ones"
    missing = {ids[i] for i in must} - set(run.reader.lookup_transactions([ids[i] for i in must]))
    assert not missing, f"valid records not stored: {sorted(missing)[:5]}"
    assert not [every[i].value for i in must_die if i in ids], "the decoder accepts hostile ones"
    _, _, bad_labels = decode_labels(
        [s.value for s in label_sent], [s.timestamp_ms for s in label_sent]
    )
    run.labels_invalid += len(bad_labels)

    dead = run.dead_letters(len(invalid) + len(bad_labels))
    _check_dead_letters(run, every, ids, invalid, label_sent, bad_labels, dead)
    _wait_labels_read(run)
    _wait_committed(run, every)
    run.alive()


def _wait_stored(run: Running, ids: list[str]) -> set[str]:
    deadline = time.monotonic() + WAIT_S
    while True:
        run.alive()
        found = set(run.reader.lookup_transactions(ids))
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _check_dead_letters(
    run: Running,
    every: list[Sent],
    ids: dict[int, str],
    invalid: Sequence[Any],
    label_sent: list[Sent],
    bad_labels: Sequence[Any],
    dead: list[Message],
) -> None:
    tx_at = {_where(s): i for i, s in enumerate(every)}
    label_at = {_where(s): i for i, s in enumerate(label_sent)}
    got_tx: dict[int, str] = {}
    got_labels: dict[int, str] = {}
    for m in dead:
        h = _headers(m)
        reason, source = h["fraudstream.error"], h["fraudstream.source"]
        assert reason and reason.isprintable(), reason
        topic, _, where = source.partition("/")
        if topic == run.topics.source:
            i = tx_at[where]
            assert i not in got_tx, f"dead-lettered twice: {source}"
            original = every[i].value or b""
            if "fraudstream.truncated" in h:  # the copy would have been over the size limit
                assert int(h["fraudstream.truncated"]) == len(original) > DLQ_TRUNCATE_BYTES
                assert m.value() == original[:DLQ_TRUNCATE_BYTES] and m.key() == every[i].key
            else:
                assert m.value() == every[i].value and m.key() == every[i].key
            got_tx[i] = reason
        elif topic == run.labels and where:
            i = label_at[where]
            assert i not in got_labels, f"label dead-lettered twice: {source}"
            assert m.value() == (label_sent[i].value or b"")
            got_labels[i] = reason
        else:  # a valid label for a transaction never seen (not within a short test)
            assert source == run.labels and "never seen" in reason, (source, reason)
    for v in invalid:
        assert got_tx.get(v.index) == v.reason, (every[v.index].value, v.reason)
    assert {v.index: v.reason for v in bad_labels} == got_labels
    # a record the decoder accepted: stored once, or dead-lettered by a later check, not both
    accepted = sorted(ids)
    stored = set(run.reader.lookup_transactions([ids[i] for i in accepted]))
    for i in accepted:
        assert (ids[i] in stored) != (i in got_tx), (every[i].value, got_tx.get(i))
    unique = len({ids[i] for i in accepted if ids[i] in stored})
    run.stored += unique
    assert run.reader.count_transactions() == run.stored


def _wait_labels_read(run: Running) -> None:
    deadline = time.monotonic() + WAIT_S
    while (stats := run.detector.stats.labels) is None or stats.read < run.labels_sent:
        run.alive()
        assert time.monotonic() < deadline, f"labels read: {stats}"
        time.sleep(0.1)
    assert stats.invalid == run.labels_invalid


def _wait_committed(run: Running, every: Sequence[Sent]) -> None:
    """The group's committed offsets reach the end of every partition (past its last record)."""
    ends = [1 + max(s.offset for s in every if s.partition == p) for p in range(PARTITIONS)]
    parts = [TopicPartition(run.topics.source, p) for p in range(PARTITIONS)]
    probe = Consumer({**run.client, "group.id": run.group, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + WAIT_S
        while (got := [tp.offset for tp in probe.committed(parts, timeout=10)]) != ends:
            run.alive()
            assert time.monotonic() < deadline, f"committed {got}, ends {ends}"
            time.sleep(0.1)
    finally:
        probe.close()


# --- the tests ----------------------------------------------------------------------------


def test_the_corpus_is_dead_lettered_or_stored_and_the_loop_goes_on(running: Running) -> None:
    now = _now_ms()
    hostile = corpus(running.fmt)
    valid = _valid(running.fmt, len(hostile) // 4)
    values: list[bytes | None] = []
    must: list[int] = []
    dead: list[int] = []
    for i, (v, ok) in enumerate(hostile):  # a valid record after every four hostile ones
        (must if ok else dead).append(len(values))
        values.append(v)
        if i % 4 == 3:
            must.append(len(values))
            values.append(valid[i // 4])
    keys = [None, b"C-fz", b"", b"\xff\x00"] * len(values)
    labels = [
        *VALUES.values(),
        *(
            obj([("tx_id", b'"t"'), ("label", b"1"), ("labelled_at_ms", r)])
            for r in TOKENS.values()
        ),
        *(
            obj([("tx_id", r), ("label", b"1"), ("labelled_at_ms", token(now))])
            for r in TOKENS.values()
        ),
    ]
    play(running, values, keys[: len(values)], labels, must, dead)


LABEL_FIX = {"account": "C-fz", "counterparty": "M1"}


@settings(
    max_examples=3,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example runs the detector
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_records_and_labels(running: Running, data: st.DataObject) -> None:
    now = _now_ms()
    fix = {"txId": ID, "eventTimeMs": TIME}
    keep = frozenset(fix)
    values = data.draw(st.lists(any_value(running.fmt, keep, fix), min_size=20, max_size=40))
    keys = data.draw(
        st.lists(st.none() | st.binary(max_size=8), min_size=len(values), max_size=len(values))
    )
    labels = data.draw(
        st.lists(
            any_value("labels", fix={**LABEL_FIX, "labelled_at_ms": now}), min_size=5, max_size=20
        )
    )
    valid = _valid(running.fmt, 10)
    play(running, valid + values, [b"v"] * len(valid) + keys, labels, range(len(valid)))


def test_values_at_the_message_size_limit(running: Running) -> None:
    """A record as large as a producer may send (librdkafka's default ``message.max.bytes``,
    1,000,000 bytes with key and headers): a valid one is stored; an invalid one must reach the
    dead-letter topic although its reason header makes the copy larger than the original (cut
    to its first DLQ_TRUNCATE_BYTES, its length in a header). Last in the module: when it
    fails, it stops the module's detector."""
    base = [(k, token(v)) for k, v in _base(running.fmt).items()]
    room = LARGEST_VALUE - 64 - len(obj([*base, ("pad", b'""')]))  # 64 bytes below the limit
    good = obj([*base, ("pad", token("p" * room))])
    bad = obj([*base, ("amount", token("p" * room))])
    assert all(LARGEST_VALUE - 100 < len(v) < LARGEST_VALUE - 50 for v in (good, bad))
    play(running, [good, bad, *_valid(running.fmt, 5)], [None] * 7, [], [0, 2, 3], [1])
