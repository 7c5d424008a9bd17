"""librdkafka's log lines through Python logging, one clear line per problem.

Left alone, librdkafka writes ``%3|1796…|FAIL|rdkafka#producer-1| [thrd:…]: …`` to stderr, once
per retry: hundreds of lines for a broker that is down. Every client fraudstream makes passes
:data:`KAFKA_LOG` as its ``logger``: each distinct problem is logged once (at WARNING for
librdkafka's errors and warnings, DEBUG for its notices), repeats within ``quiet_s`` are
counted and summarised when it next appears after that, and the noise of a line (thread
names, timings, the client's name) is dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["KAFKA_LOG", "KafkaLog"]

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_TIMING = re.compile(r"\s*\(after \d+ms in state \w+\)|\s*\(\d+ms in state \w+\)")
_REFUSED = re.compile(r"(\S+?)(?:/(?:bootstrap|\d+))?: Connect to ipv\d#(\S+) failed: ([^(]+)")
_ALL_DOWN = re.compile(r"\d+/\d+ brokers are down")


def _clean(fac: str, message: str) -> str:
    """The part of a librdkafka line a person needs."""
    text = _TIMING.sub("", _THREAD.sub("", message)).strip()
    refused = _REFUSED.search(text)
    if refused:
        broker, _addr, reason = refused.groups()
        return f"Kafka broker {broker} unreachable ({reason.strip().lower()}); retrying"
    if _ALL_DOWN.search(text):
        return "no Kafka broker reachable; retrying until one answers"
    return f"librdkafka {fac}: {text}"


class KafkaLog:
    """A ``logger`` for confluent-kafka clients: folds repeated lines, maps severities.

    confluent-kafka calls ``log(level, "%s [%s] %s", facility, client_name, message)``.
    """

    def __init__(
        self,
        name: str = "fraudstream.kafka",
        *,
        quiet_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logging.getLogger(name)
        self.quiet_s = quiet_s
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # line -> (last logged at, repeats since)

    def log(self, level: int, fmt: str, *args: Any, **_kwargs: Any) -> None:
        fac, message = ("", fmt % args) if len(args) != 3 else (str(args[0]), str(args[2]))
        line = _clean(fac, message)
        python_level = logging.WARNING if level >= logging.WARNING else logging.DEBUG
        if not self.logger.isEnabledFor(python_level):
            return
        now = self.clock()
        with self._lock:
            last, repeats = self._seen.get(line, (None, 0))
            if last is not None and now - last < self.quiet_s:
                self._seen[line] = (last, repeats + 1)
                return
            self._seen[line] = (now, 0)
            if len(self._seen) > 1000:  # a bound for lines that never repeat
                self._seen = {line: (now, 0)}
        if repeats:
            line = f"{line} (and {repeats:,} more times in the last {now - (last or now):.0f} s)"
        self.logger.log(python_level, "%s", line)


#: The one instance every client shares, so a problem seen by several clients is logged once.
KAFKA_LOG = KafkaLog()
