"""Restore time of one partition with 1 M, 5 M and 20 M records of history (snapshot + tail).

Usage: ``.venv/bin/python scripts/restore_bench.py [--history 1000000 5000000 20000000]
[--tail 250000] [--accounts 1000000] [--merchants 200000] [--s3]``.

Per history size H: a PaySim engine takes in H synthetic transactions of one partition (a fixed
population of ``--accounts`` customers paying each other and ``--merchants`` merchants, about
125 tx/s of event time: a 500 tx/s stream over 4 partitions), and its state is saved as the
detector saves it (:class:`SnapshotStore`). Then the real :class:`StateRestorer` restores the
partition through the embedded broker: it loads that snapshot, reads back the record below the
snapshot's offset and replays a tail of ``--tail`` records (the detector snapshots every
250,000 records by default, so that is the longest tail). The history itself is not in the
topic: a snapshot makes it unnecessary, which is the point; the topic holds the record the
snapshot names and the tail. For comparison the tail alone is replayed with no snapshot (the
records per second of today's full replay). With ``--s3`` the snapshot is also uploaded to a
moto S3 server (in this process, over HTTP on 127.0.0.1) as the detector's background uploader
does, and the partition is restored on "another machine": an empty snapshot directory, the
snapshot downloaded from S3, checked, loaded, then the tail. Prints one line per size; figures
go to docs/benchmarks.md, "Restore".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from fraudstream.broker import EmbeddedBroker, free_port
from fraudstream.features import FeatureEngine
from fraudstream.schema import TxBatch, encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream._detector import PAYSIM
from fraudstream.stream._guard import guard_for
from fraudstream.stream._kafka import ensure_topics
from fraudstream.stream._restore import StateRestorer
from fraudstream.stream._shared import SharedSnapshots, open_shared
from fraudstream.stream._snapshot import RecordMark, Snapshot, SnapshotStore, mark_of

CHUNK = 500_000
TX_GAP_MS = 8  # 125 tx/s of event time per partition


def history(engine: FeatureEngine, n: int, accounts: int, merchants: int, seed: int) -> int:
    """Feed ``n`` synthetic rows into partition 0 of ``engine``; returns the last event time."""
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000_000
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        times = t0 + (lo + np.arange(m, dtype=np.int64)) * TX_GAP_MS
        acc = rng.integers(0, accounts, m)
        to_merchant = rng.random(m) < 0.6
        cp = np.where(to_merchant, rng.integers(0, merchants, m), rng.integers(0, accounts, m))
        nan = np.full(m, np.nan)
        batch = TxBatch(
            tx_id=[f"h{lo + i}" for i in range(m)],
            event_time_ms=times,
            account=[f"C{a}" for a in acc.tolist()],
            counterparty=[
                f"M{c}" if mm else f"C{c}"
                for c, mm in zip(cp.tolist(), to_merchant.tolist(), strict=True)
            ],
            kind=np.where(to_merchant, 3, 4).astype(np.int8),  # PAYMENT / TRANSFER
            amount=rng.lognormal(4, 1.5, m),
            old_balance_orig=nan,
            new_balance_orig=nan,
            old_balance_dest=nan,
            new_balance_dest=nan,
            label=np.zeros(m, np.int8),
            step=np.zeros(m, np.int64),
            flagged=np.zeros(m, np.int8),
        )
        engine.update_and_extract(batch, np.zeros(m, np.int32))
    return int(t0 + (n - 1) * TX_GAP_MS)


def produce_tail(bootstrap: str, topic: str, tail: int, start_ms: int) -> RecordMark:
    """The record the snapshot names (offset 0) and ``tail`` records after it; returns the
    first one's mark."""
    records = PaySimSimulator(accounts=100_000, seed=5).next_batch(tail + 1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, r in enumerate(records):
        r.eventTimeMs = start_ms + (i + 1) * TX_GAP_MS
        while True:
            try:
                producer.produce(topic, key=r.nameOrig.encode(), value=encode_paysim(r))
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "restore-bench"})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    while (m := c.poll(5)) is None or m.error():
        pass
    c.close()
    return mark_of(m)


@contextlib.contextmanager
def moto_snapshots() -> Iterator[SharedSnapshots]:
    """Shared snapshots in a fresh bucket of a moto S3 server started here."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        shared = open_shared("s3://restore-bench/state", endpoint_url=f"http://{host}:{port}",
                             region="us-east-1")  # fmt: skip
        shared.client.create_bucket(Bucket="restore-bench")
        yield shared
    finally:
        server.stop()


def restore_elsewhere(
    shared: SharedSnapshots, path: Path, client: dict[str, str], topic: str, tail: int, root: Path
) -> str:
    """Upload ``path`` as the detector does, then restore on "another machine" (an empty
    directory under ``root``) from S3 plus the tail; the timings, as text."""
    started = time.monotonic()
    shared.publish(path, topic, 0)
    assert shared.close(timeout_s=1_800)
    upload_s = time.monotonic() - started
    started = time.monotonic()
    fingerprint = FeatureEngine().state_fingerprint()
    loaded = SnapshotStore(root / f"fetch-{topic}", shared).newest(topic, 0, fingerprint, 1)
    assert loaded is not None
    fetch_s = time.monotonic() - started
    del loaded
    fresh, guard = FeatureEngine(), guard_for("paysim")
    fresh.warm_up()
    store = SnapshotStore(root / f"elsewhere-{topic}", shared)
    restorer = StateRestorer(client, topic, PAYSIM.decode_messages, snapshots=store)
    alive: list[float] = []

    def keep_alive() -> set[int]:
        alive.append(time.monotonic())
        return set()

    started = time.monotonic()
    done = restorer.restore(
        fresh, [TopicPartition(topic, 0, tail + 1)], guard, keep_alive=keep_alive
    )
    took_s = time.monotonic() - started
    assert done.snapshots == {0: 1}, "the shared snapshot was not used"
    return (
        f"; uploaded to S3 in {upload_s:.2f} s (background thread), listed, downloaded, checked "
        f"and read in {fetch_s:.2f} s; restore on an empty directory (download + load + tail) "
        f"{took_s:.2f} s, keep-alive called {len(alive)} times"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--history", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000]
    )
    parser.add_argument("--tail", type=int, default=250_000)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=200_000)
    parser.add_argument("--s3", action="store_true", help="also restore from a moto S3 server")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(port=free_port(), log_path=Path(tmp) / "tansu.log") as broker,
        moto_snapshots() if args.s3 else contextlib.nullcontext() as shared,
    ):
        client = {"bootstrap.servers": broker.bootstrap_servers}
        for h in args.history:
            topic = f"restore-bench-{h}"
            ensure_topics(client, [topic], partitions=1)
            engine = FeatureEngine()
            engine.warm_up()
            started = time.monotonic()
            last_ms = history(engine, h, args.accounts, args.merchants, seed=h)
            built_s = time.monotonic() - started
            mark = produce_tail(broker.bootstrap_servers, topic, args.tail, last_ms)
            store = SnapshotStore(Path(tmp) / "state")
            guard = guard_for("paysim")
            guard.restore_watermarks({0: last_ms})
            started = time.monotonic()
            path = store.save(
                Snapshot(topic, 0, 1, engine.state_fingerprint(), mark, engine.save_partition(0),
                         last_ms)
            )  # fmt: skip
            save_s = time.monotonic() - started
            size_mb = path.stat().st_size / 1e6
            del engine
            started = time.monotonic()
            loaded = store.newest(topic, 0, FeatureEngine().state_fingerprint(), 1)
            assert loaded is not None
            FeatureEngine().load_partition(0, loaded.state)
            load_s = time.monotonic() - started
            del loaded
            end = [TopicPartition(topic, 0, args.tail + 1)]
            timings = []
            for snapshots in (store, None):
                fresh, g = FeatureEngine(), guard_for("paysim")
                fresh.warm_up()
                restorer = StateRestorer(client, topic, PAYSIM.decode_messages, snapshots=snapshots)
                started = time.monotonic()
                done = restorer.restore(fresh, end, g)
                timings.append((time.monotonic() - started, done, fresh.entity_count()))
            (with_s, done, entities), (tail_s, plain, _) = timings
            assert done.snapshots == {0: 1} and not plain.snapshots
            elsewhere = (
                restore_elsewhere(shared, path, client, topic, args.tail, Path(tmp))
                if shared is not None
                else ""
            )
            sys.stdout.write(
                f"history {h:>11,}: built in {built_s:6.1f} s, {entities:,} entity "
                f"states after the tail; snapshot {size_mb:,.0f} MB written in {save_s:.2f} s, "
                f"read, checked and loaded in {load_s:.2f} s; "
                f"restore (load + {done.replayed:,}-record tail) {with_s:.2f} s; the tail alone "
                f"without snapshot {tail_s:.2f} s ({plain.replayed / tail_s:,.0f} rec/s)"
                f"{elsewhere}\n"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
