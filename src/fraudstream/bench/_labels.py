"""Labels flowing during a benchmark run: a share of the scored transactions, labelled seconds
(of event time) after each one, as a bank receives analyst verdicts and chargebacks."""

from __future__ import annotations

import time
from typing import Final, Literal

import numpy as np
from confluent_kafka import Producer

from fraudstream.schema import LabelMessage, LabelSource, TxBatch, encode_label
from fraudstream.simulate import PendingLabels

__all__ = ["LabelFlow"]

#: A contradicting verdict's source, by the first verdict (1: fraud, 0: genuine): an analyst
#: clears a charged-back transaction, a chargeback arrives for one an analyst cleared.
_CONTRADICTION: Final[dict[int, LabelSource]] = {1: "analyst", 0: "chargeback"}


class LabelFlow:
    """Produces one label per ``every`` transactions seen to ``topic``.

    :meth:`see` takes each batch the detector made durable (transactions already produced,
    with their account, counterparty and event time): every ``every``-th transaction gets a
    verdict known ``delay_ms`` after its event time, fraud with probability ``fraud_share``
    (source ``chargeback``, else ``analyst``); every ``contradict_every``-th label instead
    contradicts the previous one, ``delay_ms`` after it. A label is produced once the stream
    has reached its time (a transaction at or after it was seen), so labels arrive in event
    time order with the transactions, a few seconds behind them. Deterministic given ``seed``
    and the batches.
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        *,
        every: int = 100,
        delay_ms: int = 3_000,
        fraud_share: float = 0.2,
        contradict_every: int = 20,
        seed: int = 17,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.every = every
        self.delay_ms = delay_ms
        self.fraud_share = fraud_share
        self.contradict_every = contradict_every
        self.rng = np.random.default_rng(seed)
        #: labels produced, of which fraud verdicts and contradictions; delivery failures
        self.produced = 0
        self.frauds = 0
        self.contradictions = 0
        self.failed = 0
        #: seconds spent in :meth:`see` (on the detector's consuming thread in the bench)
        self.seconds = 0.0
        self._seen = 0
        self._made = 0
        self._last: LabelMessage | None = None
        self._pending = PendingLabels()

    def see(self, tx: TxBatch) -> None:
        """Hold the labels of ``tx``'s sampled transactions; produce those now due."""
        started = time.perf_counter()
        first = (-self._seen) % self.every
        self._seen += len(tx)
        self._pending.add([self._label(tx, i) for i in range(first, len(tx), self.every)])
        if len(tx):
            for label in self._pending.due(int(tx.event_time_ms.max())):
                self._produce(label)
            self.producer.poll(0)  # delivery reports
        self.seconds += time.perf_counter() - started

    def _label(self, tx: TxBatch, i: int) -> LabelMessage:
        self._made += 1
        last = self._last
        if last is not None and self._made % self.contradict_every == 0:
            self.contradictions += 1
            verdict: Literal[0, 1] = 0 if last.label else 1
            return LabelMessage(
                last.tx_id,
                verdict,
                last.labelled_at_ms + self.delay_ms,
                account=last.account,
                counterparty=last.counterparty,
                tx_time_ms=last.tx_time_ms,
                source=_CONTRADICTION[last.label],
            )
        fraud: Literal[0, 1] = 1 if self.rng.random() < self.fraud_share else 0
        event_ms = int(tx.event_time_ms[i])
        label = LabelMessage(
            tx.tx_id[i],
            fraud,
            event_ms + self.delay_ms,
            account=tx.account[i],
            counterparty=tx.counterparty[i],
            tx_time_ms=event_ms,
            source="chargeback" if fraud else "analyst",
        )
        self._last = label
        return label

    def _produce(self, label: LabelMessage) -> None:
        key = (label.account or label.tx_id).encode()
        while True:
            try:
                self.producer.produce(
                    self.topic, key=key, value=encode_label(label), on_delivery=self._delivered
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.05)
        self.produced += 1
        self.frauds += label.label

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait for the produced labels' delivery (the ones not yet due are not sent)."""
        self.producer.flush(timeout_s)
