"""The API's side of the stream: requests' transactions out, the detectors' decisions in.

A request's record is produced to the transactions topic with the same key (the account) and
the same producer settings (librdkafka's default partitioner) as ``simulate`` and ``replay``, so
the detector that owns the account's partition scores it in sequence with every other record of
that account, and with header ``fraudstream.reply``. Once the record's outputs are durable,
that detector sends the decision straight to this instance's reply listener (a TCP server on
the loop, named in header ``fraudstream.reply-to``: one line of JSON per decision) or, if it
cannot, publishes it on the decisions topic keyed by transaction id. The event loop also reads
that topic from its end (every millisecond while answers are awaited, never waiting: the
fetching is librdkafka's own threads'). Either way the request's future is resolved, once.
Everything Python here runs on the loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from fraudstream.api._records import ApiRecord
from fraudstream.errors import KafkaError
from fraudstream.stream import ensure_topics, make_producer
from fraudstream.stream._kafka_log import KAFKA_LOG
from fraudstream.stream._replies import REPLY_HEADER, REPLY_TO_HEADER

__all__ = ["Answer", "BrokerUnavailable", "DecisionChannel", "Pending"]

log = logging.getLogger(__name__)


class _Reason(msgspec.Struct, gc=False):
    feature: str
    value: float | None  # a NaN feature value is null in JSON
    contribution: float | None


class Answer(msgspec.Struct, gc=False):
    """The part of a decisions message (``sinks.Alert``'s JSON) the API answers with."""

    tx_id: str
    account: str
    counterparty: str
    amount: float
    decision: str
    score: float | None
    reasons: list[_Reason]
    model_version: str
    rules_fired: list[str] = msgspec.field(default_factory=list)
    rule_set_version: int | None = None


_decode_answer = msgspec.json.Decoder(Answer).decode
#: Messages read from the decisions topic per call.
_BATCH: Final = 1_000
#: How often the loop reads decisions while records await answers, and otherwise.
_BUSY_S: Final = 0.001
_IDLE_S: Final = 0.02
#: Decisions kept in memory after their answer (a retry racing the store's lookup finds them).
_RECENT: Final = 100_000


class BrokerUnavailable(KafkaError):
    """The record could not be handed to Kafka (local queue full, or delivery failed)."""


@dataclass
class Pending:
    """A record produced and not answered yet; retries of its id wait on ``future``."""

    future: asyncio.Future[Answer]
    facts: tuple[str, str, float]
    sent_at: float = field(default_factory=time.monotonic)
    extras: tuple[object, ...] = ()


class DecisionChannel:
    """Produce records to ``transactions`` and await their decisions on ``decisions``.

    ``instance`` names this API process in the reply header. ``linger_ms`` is the producer's
    batching, ``fetch_wait_ms`` how long the broker may hold a fetch of decisions (the embedded
    broker holds every fetch that long). Records not answered within ``pending_ttl_s`` are
    forgotten (a retry then produces the record again). ``on_answer`` gets the seconds from
    producing a record to reading its decision, and the path it came by (``direct`` or
    ``topic``). ``reply_host`` / ``reply_port``: where the direct answers' listener binds
    (``reply_host=None``: no listener, the topic only), announced as ``advertised_host``
    (default ``reply_host``).
    """

    def __init__(
        self,
        client: Mapping[str, Any],
        *,
        transactions: str,
        decisions: str,
        instance: str,
        partitions: int = 4,
        decisions_partitions: int = 1,
        linger_ms: int = 5,
        fetch_wait_ms: int = 10,
        pending_ttl_s: float = 600.0,
        on_answer: Callable[[float, str], None] = lambda _s, _path: None,
        reply_host: str | None = "127.0.0.1",
        reply_port: int = 0,
        advertised_host: str | None = None,
    ) -> None:
        self.client = dict(client)
        self.transactions = transactions
        self.decisions = decisions
        self.instance = instance
        self.partitions = partitions
        self.decisions_partitions = decisions_partitions
        self.linger_ms = linger_ms
        self.fetch_wait_ms = fetch_wait_ms
        self.pending_ttl_s = pending_ttl_s
        #: seconds from producing a record to reading its answer, and the path it came by
        self.on_answer = on_answer
        self.pending: dict[str, Pending] = {}
        #: the latest answers, oldest first: a retry whose store lookup began before the row was
        #: committed, and ended after the answer left :attr:`pending`, finds it here
        self.recent: OrderedDict[str, Answer] = OrderedDict()
        self.ready = threading.Event()  # set once the decisions topic is read from its end
        self._headers: list[tuple[str, str | bytes | None]] = [(REPLY_HEADER, instance.encode())]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Producer | None = None
        self._reader: Consumer | None = None
        self._closed = False
        self._swept_at = time.monotonic()
        self.answered = 0
        self.answered_directly = 0
        self.reply_host, self.reply_port = reply_host, reply_port
        self.advertised_host = advertised_host or reply_host
        self._listener: asyncio.Server | None = None

    def start(self, loop: asyncio.AbstractEventLoop, extra_topics: Sequence[str] = ()) -> None:
        """Create the topics if missing (and ``extra_topics``), the producer and the reader of
        decisions, polled on ``loop``."""
        ensure_topics(self.client, [self.transactions, *extra_topics], partitions=self.partitions)
        # one partition is plenty for the answers: fewer record batches for the broker to list
        ensure_topics(self.client, [self.decisions], partitions=self.decisions_partitions)
        self._loop = loop
        # one small record per request: compressing it costs more than sending it
        conf = {"linger.ms": self.linger_ms, "compression.type": "none"}
        self._producer = make_producer(self.client, **conf)
        if self.reply_host is not None:
            self._listen(loop)
        try:
            self._reader = self._consumer()
        except (KafkaException, KafkaError) as exc:
            log.error(
                "the decisions topic cannot be read: %s; every answer will be a fallback", exc
            )
            return
        self.ready.set()  # every record produced from now on has its answer read
        loop.call_soon(self._tick)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the direct answers' listener now (its port goes in every record's header) and
        serve it on ``loop``."""
        assert self.reply_host is not None and self.advertised_host is not None
        host = self.advertised_host
        ipaddress.ip_address(host)  # detectors connect to an address, never resolve a name
        family = socket.AF_INET6 if ":" in self.reply_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.reply_host, self.reply_port))
        sock.listen(64)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._headers.append((REPLY_TO_HEADER, address.encode()))

        async def serve() -> None:
            self._listener = await loop.create_server(lambda: _Answers(self), sock=sock)

        loop.create_task(serve())
        log.info("direct answers from detectors on %s", address)

    def close(self) -> None:
        """Stop reading; deliver what is queued (up to 5 s)."""
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._producer is not None:
            left = self._producer.flush(5)
            if left:
                log.warning("%d record(s) not delivered to %s at shutdown", left, self.transactions)

    def send(self, record: ApiRecord) -> Pending:
        """Produce ``record`` (on the loop's thread) and register its pending decision."""
        assert self._producer is not None and self._loop is not None, "start() first"
        future: asyncio.Future[Answer] = self._loop.create_future()
        tx_id = record.tx_id

        def delivered(err: object, _msg: object) -> None:  # served by _tick, on the loop
            if err is not None:
                self._fail(tx_id, str(err))

        try:
            self._producer.produce(
                self.transactions,
                key=record.key.encode(),
                value=record.value,
                headers=self._headers,
                on_delivery=delivered,
            )
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailable(
                f"cannot queue the record for {self.transactions}: {exc}"
            ) from exc
        pending = Pending(future, record.facts, extras=record.extras)
        self.pending[tx_id] = pending
        self._sweep()
        return pending

    def deliver(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        """Produce one record to ``topic``; the future is done once the broker has it (or
        failed with ``BrokerUnavailable``)."""
        assert self._producer is not None and self._loop is not None, "start() first"
        loop = self._loop
        done: asyncio.Future[None] = loop.create_future()

        def settle(err: object) -> None:
            if done.done():
                return
            if err is None:
                done.set_result(None)
            else:
                done.set_exception(BrokerUnavailable(f"not delivered to {topic}: {err}"))

        def delivered(err: object, _msg: object) -> None:  # served by _tick, on the loop
            settle(err)

        try:
            self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailable(f"cannot queue a record for {topic}: {exc}") from exc
        return done

    def probe(self) -> None:
        """Raise ``KafkaError`` unless the broker answers a metadata request within 1 s."""
        assert self._producer is not None, "start() first"
        try:
            self._producer.list_topics(self.decisions, timeout=1.0)
        except KafkaException as exc:
            raise KafkaError(f"broker unreachable: {exc.args[0]}") from exc

    def _fail(self, tx_id: str, error: str) -> None:
        pending = self.pending.pop(tx_id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(BrokerUnavailable(f"record not delivered: {error}"))
            pending.future.exception()  # retrieved: no "never retrieved" warning if unawaited

    def _resolve(self, answers: list[tuple[bytes, bytes]]) -> None:
        """On the loop: the decisions read from the topic, each resolving its pending request
        if any (other instances' answers are skipped by key, undecoded)."""
        for key, value in answers:
            pending = self.pending.pop(key.decode("utf-8", "replace"), None)
            if pending is None or pending.future.done():
                continue
            try:
                answer = _decode_answer(value)
            except msgspec.DecodeError as exc:  # ValidationError too
                log.warning("undecodable decision for %r: %s", key, exc)
                continue
            self._answer(pending, answer, "topic")

    def resolve_lines(self, lines: list[bytes]) -> None:
        """On the loop: decisions sent straight to this instance, one JSON line each."""
        for line in lines:
            try:
                answer = _decode_answer(line)
            except msgspec.DecodeError as exc:
                log.warning("undecodable direct decision: %s", exc)
                continue
            pending = self.pending.pop(answer.tx_id, None)
            if pending is not None and not pending.future.done():
                self.answered_directly += 1
                self._answer(pending, answer, "direct")

    def _answer(self, pending: Pending, answer: Answer, path: str) -> None:
        pending.future.set_result(answer)
        self.answered += 1
        self.on_answer(time.monotonic() - pending.sent_at, path)
        self.recent[answer.tx_id] = answer
        if len(self.recent) > _RECENT:
            self.recent.popitem(last=False)

    def _sweep(self) -> None:
        """Forget records unanswered for ``pending_ttl_s`` (checked at most every 10 s)."""
        now = time.monotonic()
        if now - self._swept_at < 10.0:
            return
        self._swept_at = now
        old = [k for k, p in self.pending.items() if now - p.sent_at > self.pending_ttl_s]
        for key in old:
            self.pending.pop(key).future.cancel()
        if old:
            log.warning("%d record(s) got no decision within %.0f s", len(old), self.pending_ttl_s)

    def _consumer(self) -> Consumer:
        conf = {
            "logger": KAFKA_LOG,
            **self.client,
            "group.id": f"fraudstream-api-{self.instance}",  # never joined: partitions assigned
            "enable.auto.commit": False,
            "fetch.wait.max.ms": self.fetch_wait_ms,
        }
        consumer = Consumer(conf)
        meta = consumer.list_topics(self.decisions, timeout=10).topics.get(self.decisions)
        if meta is None or meta.error is not None:
            consumer.close()
            raise KafkaError(f"cannot read the partitions of {self.decisions}")
        # from each partition's high watermark, asked now (the embedded broker's may be a batch
        # behind the end: a few old decisions are read again and ignored, none is missed)
        parts = []
        for p in sorted(meta.partitions):
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(self.decisions, p), timeout=10
            )
            parts.append(TopicPartition(self.decisions, p, high))
        consumer.assign(parts)
        return consumer

    def _tick(self) -> None:
        """On the loop: read what librdkafka fetched (never waiting), serve delivery reports,
        then again in 1 ms while records await answers, else in 20 ms.

        Polling from the loop rather than from a thread of its own: a second Python thread
        waking for each fetch made the loop wait for the GIL (seen with py-spy under load).
        """
        reader, producer = self._reader, self._producer
        if self._closed or reader is None or producer is None or self._loop is None:
            return
        try:
            msgs = reader.consume(_BATCH, timeout=0)
            producer.poll(0)
        except KafkaException as exc:
            log.warning("reading decisions failed: %s", exc)
            msgs = []
        answers = [(m.key() or b"", m.value() or b"") for m in msgs if m.error() is None]
        if answers:
            self._resolve(answers)
        self._loop.call_later(_BUSY_S if self.pending else _IDLE_S, self._tick)


class _Answers(asyncio.Protocol):
    """One detector's connection to the reply listener: lines of decision JSON."""

    def __init__(self, channel: DecisionChannel) -> None:
        self.channel = channel
        self._partial = b""

    def data_received(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        if lines:
            self.channel.resolve_lines(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        self._partial = b""  # an unfinished line: its answer comes from the topic
