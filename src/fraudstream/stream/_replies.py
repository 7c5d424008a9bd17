"""Answers to the decision API: a record that carries :data:`REPLY_HEADER` gets its decision
sent once its batch is durable, straight to the waiting API instance when the record names its
reply listener (:data:`REPLY_TO_HEADER`, ``ip:port``, inside the allowed networks), else, or if
that fails, on the decisions topic keyed by transaction id.

``fraudstream serve`` produces each request's transaction to the transactions topic with these
headers and waits for the answer (docs/api.md). A direct answer is one line of the decision's
JSON on a TCP connection the detector keeps open per API instance: it takes the decisions
topic's produce, the broker's storing and the API's held fetch off the payment path. Records
without the headers cost one header lookup each.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from confluent_kafka import Message, Producer

from fraudstream.config import PRIVATE_NETWORKS
from fraudstream.schema import ScoredBatch
from fraudstream.sinks import RejectedRow, decision_payloads

__all__ = [
    "REPLY_HEADER",
    "REPLY_TO_HEADER",
    "DecisionReplies",
    "DirectReplies",
    "Replies",
    "reply_rows",
]

log = logging.getLogger(__name__)

#: The header naming a record whose decision is awaited (its value names the API instance).
REPLY_HEADER: Final = "fraudstream.reply"
#: The header naming where the API instance listens for direct answers: ``ip:port``.
REPLY_TO_HEADER: Final = "fraudstream.reply-to"
#: A reply the producer's queue cannot take within this long is dropped (the API falls back).
_QUEUE_WAIT_S: Final = 1.0
#: A direct connection or send that takes longer fails (the answers go to the topic) ...
_CONNECT_S: Final = 0.5
#: ... and the address is not tried again for this long.
_RETRY_AFTER_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Replies:
    """The rows of a batch whose decision an API awaits, and where each wants it (``None``:
    on the decisions topic)."""

    rows: npt.NDArray[np.intp]
    to: list[str | None]


def reply_rows(msgs: Sequence[Message], kept: Sequence[int]) -> Replies | None:
    """The rows of the accepted records (``msgs[kept[j]]`` is row ``j``) whose message carries
    :data:`REPLY_HEADER`, with their :data:`REPLY_TO_HEADER`; ``None`` when none does."""
    rows: list[int] = []
    to: list[str | None] = []
    for j, i in enumerate(kept):
        headers = msgs[i].headers()
        if not headers:
            continue
        awaited, address = False, None
        for header in headers:
            name, value = header[0], header[1]
            if name == REPLY_HEADER:
                awaited = True
            elif name == REPLY_TO_HEADER and value:
                address = value if isinstance(value, str) else value.decode("ascii", "replace")
        if awaited:
            rows.append(j)
            to.append(address)
    return Replies(np.array(rows, dtype=np.intp), to) if rows else None


def _endpoint(address: str) -> tuple[str, int]:
    """``ip:port`` or ``[ipv6]:port`` as ``(ip, port)``; ``ValueError`` otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"{address!r} is not ip:port")
    host = host.removeprefix("[").removesuffix("]")
    ipaddress.ip_address(host)  # an address, not a name: nothing to resolve on the way
    number = int(port)
    if not 0 < number < 65_536:
        raise ValueError(f"port {number} is out of range")
    return host, number


class DirectReplies:
    """Sends answers on TCP connections to API instances (one kept open per address), only to
    addresses in ``networks``. A send that fails returns ``False``: the caller uses the topic."""

    def __init__(self, networks: Iterable[str] = PRIVATE_NETWORKS) -> None:
        self.networks = [ipaddress.ip_network(n) for n in networks]
        self._socks: dict[str, socket.socket] = {}
        self._down_until: dict[str, float] = {}
        self._refused: set[str] = set()
        self.sent = 0

    def send(self, address: str, lines: list[bytes]) -> bool:
        """Send ``lines`` (each one answer, no newline inside) to ``address``; whether done."""
        sock = self._socks.get(address)
        if sock is not None and _closed_by_peer(sock):
            self._drop(address, "the API instance closed the connection", retry=False)
            sock = None
        if sock is None:
            sock = self._connect(address)
            if sock is None:
                return False
        try:
            sock.sendall(b"\n".join(lines) + b"\n")
        except OSError as exc:
            self._drop(address, f"send failed: {exc}", retry=True)
            return False
        self.sent += len(lines)
        return True

    def _connect(self, address: str) -> socket.socket | None:
        if address in self._refused or time.monotonic() < self._down_until.get(address, 0.0):
            return None
        try:
            host, port = _endpoint(address)
            if not any(ipaddress.ip_address(host) in net for net in self.networks):
                raise ValueError(
                    "outside the allowed networks (FRAUDSTREAM_DETECT__REPLY_NETWORKS)"
                )
        except ValueError as exc:
            self._refused.add(address)
            log.warning("no direct answers to %r: %s; they go to the decisions topic", address, exc)
            return None
        try:
            sock = socket.create_connection((host, port), timeout=_CONNECT_S)
        except OSError as exc:
            self._down_until[address] = time.monotonic() + _RETRY_AFTER_S
            log.warning(
                "API instance at %s unreachable (%s): its answers go to the decisions topic",
                address,
                exc,
            )
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socks[address] = sock
        return sock

    def _drop(self, address: str, why: str, *, retry: bool) -> None:
        sock = self._socks.pop(address, None)
        if sock is not None:
            sock.close()
        if retry:
            self._down_until[address] = time.monotonic() + _RETRY_AFTER_S
        log.info("direct answers to %s: %s", address, why)

    def close(self) -> None:
        """Close every connection."""
        for address in list(self._socks):
            self._socks.pop(address).close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end has closed ``sock`` (an API instance that went away): a send
    would seem to succeed and its answers be lost."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class DecisionReplies:
    """Sends the awaited decisions: directly (``direct``) where a record names its API's
    listener, else queued on ``topic`` with the detector's producer (flushed with the alerts).

    A reply is a courtesy to a waiting request: one that cannot be sent or delivered is
    logged, never an error of the detector (the API answers its fallback decision).
    """

    def __init__(self, producer: Producer, topic: str, direct: DirectReplies | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.direct = direct
        self.sent = 0
        self.failed = 0

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning("%d decision(s) not delivered to %s: %s", self.failed, self.topic, err)

    def write(self, batch: ScoredBatch, replies: Replies, rejected: Sequence[RejectedRow]) -> None:
        """Send the decisions of ``replies`` of ``batch``, except rows the store did not keep."""
        rows, to = replies.rows, replies.to
        if rejected:
            gone = {(r.partition, r.offset) for r in rejected}
            where = zip(batch.partition[rows].tolist(), batch.offset[rows].tolist(), strict=True)
            keep = [pos not in gone for pos in where]
            rows, to = rows[keep], [t for t, k in zip(to, keep, strict=True) if k]
        payloads = decision_payloads(batch, rows)
        by_address: dict[str | None, list[tuple[bytes, bytes]]] = {}
        for address, payload in zip(to, payloads, strict=True):
            by_address.setdefault(address if self.direct else None, []).append(payload)
        for address, group in by_address.items():
            direct = self.direct
            if address is not None and direct and direct.send(address, [v for _, v in group]):
                continue
            for key, value in group:
                self._produce(key, value)
        self.sent += len(rows)

    def close(self) -> None:
        """Close the direct connections."""
        if self.direct is not None:
            self.direct.close()

    def _produce(self, key: bytes, value: bytes) -> None:
        deadline = time.monotonic() + _QUEUE_WAIT_S
        while True:
            try:
                self.producer.produce(
                    self.topic, value=value, key=key, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                if time.monotonic() > deadline:
                    self._on_delivery("the producer's queue is full", None)
                    return
                self.producer.poll(0.05)
