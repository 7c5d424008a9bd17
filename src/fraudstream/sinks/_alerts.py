"""The alerts topic: one JSON message per review/block decision, keyed by account."""

from __future__ import annotations

import json
import logging
import time
from itertools import starmap
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from fraudstream.errors import KafkaError, SinkBackpressure
from fraudstream.schema import ScoredBatch
from fraudstream.sinks._rows import Alert, Reason, decision_names, kind_names, label_values

_NO_IDS: tuple[str, ...] = ()

__all__ = ["AlertTopicSink", "alert_payloads", "decision_payloads"]

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


def alert_payloads(batch: ScoredBatch) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` per review/block row: key = account (UTF-8), value = ``Alert`` JSON
    (with the ids of the live and shadow rules that fired and the rule set's version)."""
    return _payloads(batch, batch.alert_index(), by_tx_id=False)


def decision_payloads(batch: ScoredBatch, rows: npt.NDArray[np.intp]) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` per row of ``rows``, whatever its decision: key = transaction id, value =
    the ``Alert`` JSON of the row (the answer to ``fraudstream serve``, docs/api.md)."""
    return _payloads(batch, rows, by_tx_id=True)


def _payloads(
    batch: ScoredBatch, index: npt.NDArray[np.intp], *, by_tx_id: bool
) -> list[tuple[bytes, bytes]]:
    tx = batch.tx
    fired, shadow = batch.rules_fired, batch.rules_shadow
    version = batch.rule_set_version or None
    model_version, created_at_ms = batch.model_version, batch.processed_at_ms
    columns = zip(
        index.tolist(),
        decision_names(batch.decision[index]),
        batch.score[index].tolist(),
        tx.event_time_ms[index].tolist(),
        kind_names(tx.kind[index]),
        tx.amount[index].tolist(),
        label_values(tx.label[index]),
        strict=True,
    )
    out: list[tuple[bytes, bytes]] = []
    for i, decision, score, event_time_ms, kind, amount, label in columns:
        # positional, in the field order of ``Alert``: keywords cost 2.5 times as much (4.1
        # against 1.6 µs an alert in-process), the output thread's work per extra alert
        alert = Alert(
            tx.tx_id[i],  # alert_id
            tx.tx_id[i],
            decision,
            score,
            list(starmap(Reason, batch.reasons[i])),
            model_version,
            event_time_ms,
            created_at_ms,
            tx.account[i],
            tx.counterparty[i],
            kind,
            amount,
            label,
            list(fired[i] if fired is not None else _NO_IDS),  # rules_fired
            list(shadow[i] if shadow is not None else _NO_IDS),  # rules_shadow
            version,  # rule_set_version
        )
        key = tx.tx_id[i] if by_tx_id else tx.account[i]
        try:
            out.append((key.encode(), _encode(alert)))
        except UnicodeEncodeError:  # a lone surrogate: escaped, never a crash of the sink
            text = json.dumps(msgspec.to_builtins(alert), ensure_ascii=True)
            out.append((key.encode("utf-8", "backslashreplace"), text.encode()))
    return out


class AlertTopicSink:
    """Produce alerts to ``topic`` through a ``confluent_kafka.Producer`` (duck-typed).

    ``write`` queues the batch's alerts (waiting on a full local queue up to ``produce_timeout_s``,
    then raising ``SinkBackpressure``); ``flush`` waits for delivery and raises if any failed.
    """

    def __init__(self, producer: Any, topic: str, *, produce_timeout_s: float = 30.0) -> None:
        self.producer = producer
        self.topic = topic
        self.produce_timeout_s = produce_timeout_s
        self._failed = 0
        self._first_error: str | None = None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._failed += 1
            if self._first_error is None:
                self._first_error = str(err)

    def write(self, batch: ScoredBatch) -> None:
        """Queue one message per review/block row of ``batch``."""
        payloads = alert_payloads(batch)
        for key, value in payloads:
            self._produce(key, value)
        if payloads:
            self.producer.poll(0)

    def _produce(self, key: bytes, value: bytes) -> None:
        deadline: float | None = None
        while True:
            try:
                self.producer.produce(
                    self.topic, value=value, key=key, on_delivery=self._on_delivery
                )
                return
            except BufferError:  # local queue full: serve delivery callbacks, then retry
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.produce_timeout_s
                if now >= deadline:
                    raise SinkBackpressure(
                        f"alerts topic {self.topic}: the producer queue stayed full for "
                        f"{self.produce_timeout_s:.0f} s; is the broker reachable? "
                        "(or raise queue.buffering.max.messages)"
                    ) from None
                self.producer.poll(0.05)
            except Exception as exc:
                raise KafkaError(
                    f"alerts topic {self.topic}: produce failed for key {key!r}: {exc}"
                ) from exc

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait up to ``timeout_s`` for delivery of everything written so far.

        Raises ``KafkaError`` if a delivery failed since the last flush, ``SinkBackpressure`` if
        messages are still undelivered at the timeout (flush again to keep waiting).
        """
        remaining = int(self.producer.flush(timeout_s))
        if self._failed:
            failed, first = self._failed, self._first_error
            self._failed, self._first_error = 0, None
            raise KafkaError(
                f"alerts topic {self.topic}: {failed} alert(s) failed delivery "
                f"(first error: {first}); check that the topic exists and the broker is reachable"
            )
        if remaining:
            raise SinkBackpressure(
                f"alerts topic {self.topic}: {remaining} alert(s) still undelivered after "
                f"{timeout_s:g} s; the broker is slow or unreachable, flush again to keep waiting"
            )
