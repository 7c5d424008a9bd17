"""The notifier's consumer loop: alerts topic → ``Dispatcher``, with back-pressure.

Offsets are committed only after a whole batch is handled (every delivery or permanent failure
recorded). While a channel (or the store) is down the dispatcher's back-off is spent in
``_Hold``: the partitions are paused and the consumer keeps polling (so it stays in its group)
until it answers; then consumption resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from fraudstream.errors import StoreError
from fraudstream.sinks._notify import Dispatcher, NotifyError
from fraudstream.sinks._rows import Alert

__all__ = ["run_notifier"]

log = logging.getLogger(__name__)

_decode_alert = msgspec.json.Decoder(Alert).decode
#: Notifications from elsewhere than the alerts topic: ``side(wait)`` → how many were handled.
Side = Callable[[Callable[[float], None]], int]
_encode = msgspec.json.Encoder().encode


class _Hold:
    """Spend a back-off with the consumer's partitions paused, polling to keep the membership;
    cut short (within 0.5 s) once ``should_stop``."""

    def __init__(self, consumer: Any, topic: str, should_stop: Callable[[], bool]) -> None:
        self.consumer, self.topic, self.should_stop = consumer, topic, should_stop
        self.paused = False
        self.started = 0.0

    def __call__(self, seconds: float) -> None:
        if not self.paused:
            self.paused, self.started = True, time.monotonic()
            self.consumer.pause(self.consumer.assignment())
            log.warning(
                "notifier: a channel is failing; consumption of %s paused, offsets not "
                "committed, retrying with back-off until it answers",
                self.topic,
            )
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.should_stop():
            msg = self.consumer.poll(min(left, 0.5))
            if msg is not None and msg.error() is None:
                self._rewind(msg)  # a partition assigned meanwhile was not paused

    def _rewind(self, msg: Any) -> None:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.consumer.seek(tp)
        self.consumer.pause([tp])

    def release(self) -> None:
        """Resume consumption if it was paused."""
        if self.paused:
            self.consumer.resume(self.consumer.assignment())
            log.warning(
                "notifier: channel answers again after %.1f s; consumption of %s resumed",
                time.monotonic() - self.started,
                self.topic,
            )
            self.paused = False


def run_notifier(
    consumer: Any,
    topic: str,
    dispatcher: Dispatcher,
    should_stop: Callable[[], bool],
    *,
    batch_max: int = 500,
    idle_exit_s: float | None = None,
    side: Side | None = None,
    side_every_s: float = 10.0,
) -> int:
    """Feed ``topic``'s alerts to ``dispatcher`` through ``consumer`` (a confluent-kafka
    ``Consumer`` with manual commits); commit each batch once handled. The alerts handled.

    Stopping while a channel is down returns without committing that batch: the restarted
    notifier gets it again and skips what was already delivered. ``side(wait)``, called every
    ``side_every_s`` between batches, notifies what does not come from the topic (drift alarms
    read from the store) and returns how many it handled; a store failure there is retried
    at the next call.
    """
    consumer.subscribe([topic])
    handled = 0
    last_data = time.monotonic()
    hold = _Hold(consumer, topic, should_stop)
    next_side = 0.0
    while not should_stop():
        if side is not None and time.monotonic() >= next_side:
            next_side = time.monotonic() + side_every_s
            if not _run_side(side, hold, should_stop):
                break
        msgs = consumer.consume(batch_max, timeout=0.2)
        if not msgs:
            if idle_exit_s is not None and time.monotonic() - last_data > idle_exit_s:
                break
            continue
        last_data = time.monotonic()
        try:
            for msg in msgs:
                if msg.error() is not None:
                    log.warning("consumer error on %s: %s", topic, msg.error())
                    continue
                handled += _handle_message(msg, dispatcher, hold)
        except (NotifyError, StoreError):
            if should_stop():
                log.warning("notifier stopped while holding; batch not committed")
                break
            raise
        finally:
            hold.release()
        _commit(consumer, msgs)
    return handled


def _run_side(side: Side, hold: _Hold, should_stop: Callable[[], bool]) -> bool:
    """Run ``side`` with the consumer held while a channel is down; ``False`` if stopped."""
    try:
        side(hold)
    except StoreError as exc:
        log.warning("notifier: drift alarms not read from the store (retried): %s", exc)
    except NotifyError:
        if should_stop():
            return False
        raise
    finally:
        hold.release()
    return True


def _commit(consumer: Any, msgs: Sequence[Any]) -> None:
    """Commit past the last message of each partition (a failed commit only means a replay)."""
    from confluent_kafka import KafkaException, TopicPartition

    last: dict[tuple[str, int], int] = {}
    for m in msgs:
        if m.error() is None:
            last[(m.topic(), m.partition())] = m.offset()
    if not last:
        return
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
            asynchronous=False,
        )
    except KafkaException as exc:
        log.warning("notifier offset commit failed (alerts may be replayed): %s", exc)


def _handle_message(msg: Any, dispatcher: Dispatcher, hold: _Hold) -> int:
    where = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
    try:
        alert = _decode_alert(msg.value() or b"")
    except msgspec.DecodeError as exc:
        log.error("alert at %s is not an Alert JSON (%s); recorded as a failure", where, exc)
        raw = (msg.value() or b"").decode("utf-8", "replace")
        dispatcher.records.record_notification_failure(
            where, "decode", 1, str(exc), _encode({"raw": raw}).decode()
        )
        return 0
    return int(dispatcher.handle(alert, wait=hold))
