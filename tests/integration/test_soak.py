"""Minutes of a paced stream, with backlogs, through the real `fraudstream detect` process.

Every earlier test ran for seconds, which is how a detector that stopped receiving records a
few minutes into a paced stream went unseen: the embedded broker answers a fetch with nothing
when reading a partition takes longer than the consumer's wait, and a paced producer leaves
thousands of small batches per partition for it to read. This test makes that pattern on
purpose (tiny batches for minutes, a burst, a detector stopped while the stream goes on, then
restarted behind a backlog) and asserts that every produced record is scored and stored, and
that any stall the watchdog saw was healed by a rejoin. Before the watchdog and the rejoin,
with the detector's old 5 ms fetch wait, it failed: the store stopped growing after a minute
or two (33,559 of ~80,000 stored before the stop).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator, RateLimiter
from fraudstream.stream import ensure_topics, make_producer

from ._procs import count_rows, detector_env, start_detector

pytestmark = pytest.mark.integration

RATE = 500.0  # the bank's rate
#: (phase, seconds at RATE or records at full speed): about 3.5 minutes in all
PHASES = (("paced", 75.0), ("burst", 20_000), ("paced", 45.0), ("paced, detector down", 20.0),
          ("paced", 45.0))  # fmt: skip


class _Stream:
    """Produces the phases in a thread; ``linger.ms`` 1 makes a batch of almost every record."""

    def __init__(self, client: dict[str, str], topic: str) -> None:
        self.producer = make_producer(client, **{"linger.ms": 1})
        self.topic = topic
        self.sim = PaySimSimulator(accounts=5_000, seed=21)
        self.produced = 0
        self.phase = ""
        self.done = threading.Event()
        self.error: BaseException | None = None

    def _send(self, n: int) -> None:
        for rec in self.sim.next_batch(n):
            while True:
                try:
                    self.producer.produce(self.topic, encode_paysim(rec), rec.nameOrig.encode())
                    break
                except BufferError:
                    self.producer.poll(0.05)
        self.producer.poll(0)
        self.produced += n

    def run(self) -> None:
        try:
            for phase, size in PHASES:
                self.phase = phase
                if phase == "burst":
                    self._send(int(size))
                    continue
                limiter, deadline = RateLimiter(RATE), time.monotonic() + size
                while time.monotonic() < deadline:
                    limiter.acquire(5)
                    self._send(5)
            assert self.producer.flush(60) == 0
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.done.set()


def test_minutes_of_a_paced_stream_with_backlogs_are_all_scored(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path, models_dir: Path
) -> None:
    tx, alerts, dlq = f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"
    ensure_topics(client, [tx, alerts, dlq], partitions=4)
    db = tmp_path / "store.db"
    env = {
        **detector_env(bootstrap, unique, db, models_dir, tmp_path),
        "FRAUDSTREAM_DETECT__STALL_AFTER_S": "10",
    }
    stream = _Stream(client, tx)
    threading.Thread(target=stream.run, daemon=True).start()
    outputs: list[str] = []

    detector = start_detector(env)
    while stream.phase != "paced, detector down" and not stream.done.is_set():
        assert detector.poll() is None, "the detector exited during the stream"
        time.sleep(0.5)
    stored_before_stop = count_rows(db, "transactions_enriched")
    detector.send_signal(signal.SIGTERM)
    out, _ = detector.communicate(timeout=120)
    outputs.append(out.decode())
    assert detector.returncode == 0, outputs[-1]
    assert stored_before_stop > 40_000, f"only {stored_before_stop} stored before the stop"
    while stream.phase == "paced, detector down" and not stream.done.is_set():
        time.sleep(0.5)

    detector = start_detector(env)  # behind a backlog of the stream that went on without it
    stream.done.wait(timeout=300)
    assert stream.error is None, stream.error
    deadline = time.monotonic() + 120
    while count_rows(db, "transactions_enriched") < stream.produced:
        assert time.monotonic() < deadline, (
            f"{count_rows(db, 'transactions_enriched'):,} of {stream.produced:,} stored 120 s "
            "after the stream ended: the detector stopped consuming"
        )
        assert detector.poll() is None, "the detector exited"
        time.sleep(1.0)
    detector.send_signal(signal.SIGTERM)
    out, _ = detector.communicate(timeout=120)
    outputs.append(out.decode())

    assert count_rows(db, "transactions_enriched") == stream.produced
    log = "\n".join(outputs)
    assert log.count("detector stalled") <= log.count("rejoining the group"), log[-3000:]
    assert count_rows(db, "transactions_enriched") > 100_000


def test_a_stalled_consumer_rejoins_with_a_longer_fetch_wait(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path, models_dir: Path
) -> None:
    """A 1 ms fetch wait on a topic of 40,000 one-record batches: the broker answers every
    fetch with nothing; the watchdog sees the stall, the detector rejoins with 4 ms, 16 ms, …
    until the broker can answer, and every record is stored."""
    tx, alerts, dlq = f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}"
    ensure_topics(client, [tx, alerts, dlq], partitions=1)
    stream = _Stream(client, tx)
    stream.producer = make_producer(client, **{"linger.ms": 0, "batch.num.messages": 1})
    stream._send(40_000)
    assert stream.producer.flush(120) == 0
    db = tmp_path / "store.db"
    env = {
        **detector_env(bootstrap, unique, db, models_dir, tmp_path),
        "FRAUDSTREAM_DETECT__FETCH_WAIT_MS": "1",
        "FRAUDSTREAM_DETECT__STALL_AFTER_S": "5",
        "FRAUDSTREAM_KAFKA__PARTITIONS": "1",
    }
    detector = start_detector(env)
    deadline = time.monotonic() + 240
    while count_rows(db, "transactions_enriched") < 40_000:
        if detector.poll() is not None or time.monotonic() > deadline:
            detector.kill()
            out, _ = detector.communicate(timeout=60)
            stored = count_rows(db, "transactions_enriched")
            raise AssertionError(f"{stored:,} of 40,000 stored:\n{out.decode()[-4000:]}")
        time.sleep(1.0)
    detector.send_signal(signal.SIGTERM)
    out, _ = detector.communicate(timeout=120)
    log = out.decode()
    assert "detector stalled" in log and "rejoining the group" in log, log[-3000:]
    assert count_rows(db, "transactions_enriched") == 40_000
