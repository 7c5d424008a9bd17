"""Minutes of a 500 tx/s stream with 1 % hostile records, through a real `fraudstream detect`.

Every kind of hostile record issue 16 lists (huge or microsecond times, huge/infinite/negative
amounts, NUL/newline/bidi characters, oversized ids, deep nesting, wrong types, broken JSON, a
second record with an existing txId and other content) is mixed into the simulator's stream.
At the end: every valid record stored once, every hostile one in the dead-letter topic, the
detector process never restarted. Run: python scripts/hostile_soak.py --minutes 10
(uses the promoted bundle under FRAUDSTREAM_MODELS_DIR, default models/).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from fraudstream.broker import EmbeddedBroker, free_port
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator, RateLimiter
from fraudstream.stream import ensure_topics, make_producer


def _tx(now_ms: int, **fields: object) -> bytes:
    base: dict[str, object] = {
        "txId": f"h-{uuid.uuid4().hex[:12]}",
        "step": 1,
        "type": "TRANSFER",
        "amount": 181.0,
        "nameOrig": "C-hostile",
        "nameDest": "C-dest",
        "eventTimeMs": now_ms,
    }
    return json.dumps({**base, **fields}).encode()


def hostile(now_ms: int, i: int) -> bytes:
    """The i-th hostile record (cycling through every kind)."""
    kinds = [
        lambda: _tx(now_ms, eventTimeMs=2**63),
        lambda: _tx(now_ms, step=2**63),
        lambda: _tx(now_ms, eventTimeMs=now_ms * 1000),  # microseconds
        lambda: _tx(now_ms, eventTimeMs=4_102_444_800_000),  # 2100
        lambda: _tx(now_ms, eventTimeMs=now_ms + 3 * 86_400_000),  # days ahead of the broker
        lambda: _tx(now_ms, amount=1e308),
        lambda: _tx(now_ms, oldbalanceOrg=1e308),
        lambda: _tx(now_ms)[:-1] + b', "amount": 1e400}',
        lambda: _tx(now_ms, amount=-5.0),
        lambda: _tx(now_ms, nameOrig="C1\x00"),
        lambda: _tx(now_ms, txId="a\nb" + uuid.uuid4().hex[:6]),
        lambda: _tx(now_ms, nameDest="C\u202e9"),
        lambda: _tx(now_ms, nameOrig="C" * 10_000),
        lambda: _tx(now_ms)[:-1] + b', "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        lambda: _tx(now_ms, amount={"nested": 1}),
        lambda: b'{"step": 1, "type": "TRANSFER", "amount": ',
        lambda: b"\xff\xfe not json",
    ]
    return kinds[i % len(kinds)]()


def _count_dlq(client: dict[str, str], topic: str, partitions: int) -> int:
    consumer = Consumer({**client, "group.id": f"count-{uuid.uuid4().hex[:6]}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    n, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < 5:
        msgs = [m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None]
        if msgs:
            n += len(msgs)
            idle_since = time.monotonic()
    consumer.close()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--hostile-share", type=float, default=0.01)
    parser.add_argument("--store-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hostile-soak-"))
    store_url = args.store_url or f"sqlite:///{tmp / 'store.db'}"
    with EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log") as broker:
        client = {"bootstrap.servers": broker.bootstrap_servers}
        ensure_topics(client, ["transactions", "fraud-alerts", "transactions.dlq"], partitions=4)
        env = {
            **os.environ,
            "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "FRAUDSTREAM_STORE__URL": store_url,
            "FRAUDSTREAM_DATA_DIR": str(tmp),
        }
        log = (tmp / "detect.log").open("wb")
        detector = subprocess.Popen(
            [sys.executable, "-m", "fraudstream", "detect", "--quiet"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        producer = make_producer(client, **{"linger.ms": 100})
        sim = PaySimSimulator(accounts=20_000, seed=31, start_ms=int(time.time() * 1000))
        limiter = RateLimiter(args.rate)
        every = round(1 / args.hostile_share)
        valid = hostile_sent = conflicts = 0
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            limiter.acquire(10)
            for rec in sim.next_batch(10):
                producer.produce("transactions", encode_paysim(rec), rec.nameOrig.encode())
                valid += 1
                if valid % every == 0:
                    now_ms = int(time.time() * 1000)
                    kind = hostile_sent + conflicts
                    if kind % 18 == 17:  # a valid record with an id, then that id again
                        first = json.loads(encode_paysim(rec))
                        first["txId"] = f"dup-{conflicts}"
                        producer.produce("transactions", json.dumps(first).encode(), b"C-dup")
                        first["amount"] = float(first["amount"]) + 1.0
                        producer.produce("transactions", json.dumps(first).encode(), b"C-dup")
                        valid += 1
                        conflicts += 1
                    else:
                        producer.produce("transactions", hostile(now_ms, kind), b"C-hostile")
                        hostile_sent += 1
            producer.poll(0)
        assert producer.flush(60) == 0
        print(f"produced {valid:,} valid, {hostile_sent:,} hostile, {conflicts:,} dup ids")  # noqa: T201
        db = store_url.removeprefix("sqlite:///")
        deadline = time.monotonic() + 180
        stored = 0
        while time.monotonic() < deadline:
            if detector.poll() is not None:
                break
            if store_url.startswith("sqlite"):
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    query = "SELECT count(*) FROM transactions_enriched"
                    stored = conn.execute(query).fetchone()[0]
                if stored >= valid:
                    break
            time.sleep(2)
        time.sleep(5)
        running = detector.poll() is None
        detector.send_signal(signal.SIGTERM)
        detector.wait(60)
        dlq = _count_dlq(client, "transactions.dlq", 4)
    print(  # noqa: T201
        json.dumps(
            {
                "minutes": args.minutes,
                "valid_produced": valid,
                "hostile_produced": hostile_sent,
                "conflicting_ids_produced": conflicts,
                "stored": stored,
                "dead_letters": dlq,
                "detector_ran_throughout": running,
                "detector_exit_code": detector.returncode,
                "log": str(tmp / "detect.log"),
            }
        )
    )


if __name__ == "__main__":
    main()
