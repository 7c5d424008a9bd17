"""``fraudstream bench --api``: the decision API at fixed request rates, the detector running.

``fraudstream detect`` and ``fraudstream serve`` run as their own processes (as deployed) on
the run's topics and store; this process only drives HTTP (``bench._http``, a lean client: it
shares the cores with what it measures): an open loop that sends request
*i* at ``i / rate`` s whatever the answers, one in ``retry_every`` a retry of an earlier
transaction. Latency is from handing the request to the HTTP client to its answer. After each
rate: every transaction id stored once, none produced twice (a retry is answered, not sent
again), and every retry answered with its first decision.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fraudstream.api import create_key
from fraudstream.bench._http import LeanHttp
from fraudstream.broker import free_port
from fraudstream.dashboard import Database
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator

__all__ = ["api_bench"]

#: Requests sent, one at a time, before the timed load (joins, first batches, connections).
_WARM_UP: Final = 100
#: How long the processes may take to be ready, and the store to hold every decision.
_READY_S: Final = 120.0
#: Keep-alive connections of the load client (at 1,000/s and a 100 ms budget, at most ~100 busy).
_CONNECTIONS: Final = 256
_PATH: Final = "/v1/decisions"


@dataclass
class _Load:
    """What one rate's run saw."""

    latency_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # client: intended vs actual send
    errors: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    decided: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    retries_sent: int = 0
    retries: int = 0  # answered with a decision (not a fallback)
    retry_mismatches: int = 0


@dataclass(frozen=True)
class _Stack:
    base: str
    token: str
    db: Path
    topic: str
    prefix: str


def _env(settings_env: Mapping[str, str], prefix: str, db: Path, work: Path) -> dict[str, str]:
    return {
        **os.environ,
        **settings_env,
        "FRAUDSTREAM_TOPICS__TRANSACTIONS": f"{prefix}tx",
        "FRAUDSTREAM_TOPICS__ALERTS": f"{prefix}alerts",
        "FRAUDSTREAM_TOPICS__DLQ": f"{prefix}dlq",
        "FRAUDSTREAM_TOPICS__LABELS": f"{prefix}labels",
        "FRAUDSTREAM_API__DECISIONS_TOPIC": f"{prefix}decisions",
        "FRAUDSTREAM_DETECT__GROUP_ID": f"{prefix}detect",
        "FRAUDSTREAM_STORE__URL": f"sqlite:///{db}",
        "FRAUDSTREAM_DATA_DIR": str(work),
    }


def api_bench(
    env: Mapping[str, str],
    client: Mapping[str, Any],
    work: Path,
    *,
    rates: Sequence[float] = (200.0, 1_000.0),
    duration_s: float = 20.0,
    accounts: int = 20_000,
    retry_every: int = 100,
) -> dict[str, Any]:
    """Drive ``fraudstream serve`` at each of ``rates`` for ``duration_s``; ``env`` holds the
    settings both processes get (broker, models directory, ...), ``client`` the broker's
    librdkafka settings; files go to ``work``."""
    prefix = f"bench-api-{uuid.uuid4().hex[:6]}-"
    db = work / "api-bench.db"
    proc_env = _env(env, prefix, db, work)
    store = Database(f"sqlite:///{db}")
    store.migrate()
    token = create_key(store, "bench", ("decide",)).token
    store.close()
    port = free_port()
    logs = (work / "detect.log").open("wb"), (work / "serve.log").open("wb")
    cmd = [sys.executable, "-m", "fraudstream"]
    procs = [
        subprocess.Popen([*cmd, "detect", "--quiet"], env=proc_env, stdout=logs[0], stderr=logs[0]),
        subprocess.Popen(
            [*cmd, "serve", "--port", str(port)], env=proc_env, stdout=logs[1], stderr=logs[1]
        ),
    ]
    stack = _Stack(f"http://127.0.0.1:{port}", token, db, f"{prefix}tx", prefix)
    out: dict[str, Any] = {"rates": {}, "settings": _settings_of(proc_env)}
    try:
        try:
            out["warm_up_s"] = asyncio.run(_warm_up(stack, procs))
        except RuntimeError as exc:
            for f in logs:
                f.flush()
            tails = [Path(f.name).read_text(errors="replace")[-1_500:] for f in logs]
            raise RuntimeError(f"{exc}:\n" + "\n".join(tails)) from exc
        sim = PaySimSimulator(accounts=accounts, seed=5)
        watched = {"detect": psutil.Process(procs[0].pid), "serve": psutil.Process(procs[1].pid)}
        watched["client"] = psutil.Process()
        brokers = [c for c in watched["client"].children(recursive=True) if "tansu" in c.name()]
        watched.update({"broker": brokers[0]} if brokers else {})
        for rate in rates:
            before = {k: _cpu_s(p) for k, p in watched.items()}
            waits = _wait_buckets(stack.base)
            load = asyncio.run(_drive(stack, sim, rate, duration_s, retry_every))
            figures = _figures(stack, client, load, rate, duration_s)
            figures["cpu_ms_per_request"] = {
                k: (_cpu_s(p) - before[k]) * 1000 / figures["requests"] for k, p in watched.items()
            }
            figures["decision_wait_ms"] = _quantiles(waits, _wait_buckets(stack.base))
            out["rates"][str(int(rate))] = figures
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()
    return out


def _cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` (all its threads)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def _wait_buckets(base: str) -> dict[float, float]:
    """The API's ``decision_wait`` histogram: cumulative count per upper bound (s)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:  # noqa: S310  # local
        text = answer.read().decode()
    return {
        float(s.labels["le"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "fraudstream_api_decision_wait_seconds"
        for s in family.samples
        if s.name.endswith("_bucket")
    }


def _quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """Upper bounds (ms) of the buckets holding the p50 and p99 of what was observed between
    two readings of a histogram."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    out = {}
    for name, q in (("p50_at_most", 0.5), ("p99_at_most", 0.99)):
        at = next((b for b, c in zip(bounds, counts, strict=True) if c >= q * total), bounds[-1])
        out[name] = at * 1000
    return out


def _settings_of(env: Mapping[str, str]) -> dict[str, str]:
    keys = (
        "DETECT__FETCH_WAIT_MS",
        "API__FETCH_WAIT_MS",
        "API__LINGER_MS",
        "API__BUDGET_MS",
        "API__DECISIONS_PARTITIONS",
    )
    return {k: env.get(f"FRAUDSTREAM_{k}", "default") for k in keys}


def _client(stack: _Stack) -> LeanHttp:
    host, _, port = stack.base.removeprefix("http://").rpartition(":")
    auth = {"Authorization": f"Bearer {stack.token}"}
    return LeanHttp(host, int(port), headers=auth, connections=_CONNECTIONS)


async def _warm_up(stack: _Stack, procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """Wait for the API and the detector: until a decision is not a fallback."""
    started = time.monotonic()

    def check() -> None:
        if time.monotonic() - started > _READY_S or any(p.poll() is not None for p in procs):
            raise RuntimeError("the API or the detector did not start")

    while True:  # the server listens
        check()
        try:
            with urllib.request.urlopen(f"{stack.base}/healthz", timeout=2):  # noqa: S310
                break
        except OSError:
            await asyncio.sleep(0.2)
    async with _client(stack) as http:
        decided = i = 0
        while decided < _WARM_UP:
            check()
            i += 1
            body = {"step": 1, "type": "PAYMENT", "amount": 10.0, "nameOrig": f"W{i % 50}",
                    "nameDest": "M-warm", "txId": f"{stack.prefix}warm-{i}"}  # fmt: skip
            status, answer = await http.post(_PATH, msgspec.json.encode(body))
            decided += status == 200 and not msgspec.json.decode(answer)["fallback"]
    return time.monotonic() - started


async def _drive(
    stack: _Stack, sim: PaySimSimulator, rate: float, duration_s: float, retry_every: int
) -> _Load:
    """The open loop at ``rate`` for ``duration_s``."""
    n = int(rate * duration_s)
    records = sim.next_batch(n)
    # a live stream: no event time of the simulator's own clock (it starts at the epoch), the
    # record's time is when the API produces it, as for a bank's authorisation request
    bodies = [
        encode_paysim(
            msgspec.structs.replace(r, txId=f"{stack.prefix}{int(rate)}-{i}", eventTimeMs=None)
        )
        for i, r in enumerate(records)
    ]
    load = _Load()
    gc.freeze()  # this process's long-lived objects: no full collection pausing the load
    async with _client(stack) as http:
        tasks = []
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            retry = retry_every > 0 and i % retry_every == retry_every - 1 and i >= 50
            body = bodies[i - 50] if retry else bodies[i]
            load.retries_sent += retry
            tasks.append(asyncio.create_task(_one(http, body, due, load, retry)))
        await asyncio.gather(*tasks)
    return load


async def _one(http: LeanHttp, body: bytes, due: float, load: _Load, retry: bool) -> None:
    sent = time.perf_counter()
    load.lag_ms.append((sent - due) * 1000)
    try:
        status, payload = await http.post(_PATH, body)
    except Exception as exc:  # noqa: BLE001  # counted, never fatal
        load.errors[type(exc).__name__] = load.errors.get(type(exc).__name__, 0) + 1
        return
    load.latency_ms.append((time.perf_counter() - sent) * 1000)
    if status != 200:
        load.errors[str(status)] = load.errors.get(str(status), 0) + 1
        return
    got = msgspec.json.decode(payload)
    if got["fallback"]:
        load.fallbacks += 1
        return
    answer_of = (got["decision"], got["score"])
    if not retry:
        load.decided[got["tx_id"]] = answer_of
        return
    load.retries += 1
    first = load.decided.get(got["tx_id"])
    if first is not None and first != answer_of:
        load.retry_mismatches += 1


def _figures(
    stack: _Stack, client: Mapping[str, Any], load: _Load, rate: float, duration_s: float
) -> dict[str, Any]:
    lat = np.array(load.latency_ms)
    ids_prefix = f"{stack.prefix}{int(rate)}-"
    sent = int(rate * duration_s)
    distinct = sent - load.retries_sent
    stored = _stored(stack.db, ids_prefix, distinct)
    return {
        "requests": sent,
        "distinct_transactions": distinct,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
        # the run in thirds by answer order: does the tail grow as the topics do?
        "p99_ms_by_third": [float(np.percentile(t, 99)) for t in np.array_split(lat, 3) if len(t)],
        "client_lag_p99_ms": float(np.percentile(load.lag_ms, 99)) if load.lag_ms else 0.0,
        "errors": sum(load.errors.values()),
        "error_kinds": load.errors,
        "fallbacks": load.fallbacks,
        "retries_checked": load.retries,
        "retry_mismatches": load.retry_mismatches,
        "stored": stored,
        "produced": _produced(client, stack.topic, ids_prefix, distinct),
    }


def _stored(db: Path, prefix: str, expect: int) -> int:
    """Stored rows of ids starting with ``prefix``, once ``expect`` are there (or a minute)."""
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM transactions_enriched WHERE tx_id >= ? AND tx_id < ?",
                (prefix, prefix + "\uffff"),
            ).fetchone()
        if n >= expect or time.monotonic() > deadline:
            return int(n)
        time.sleep(0.5)


def _produced(client: Mapping[str, Any], topic: str, prefix: str, expect: int) -> int:
    """Records of ``topic`` whose transaction id starts with ``prefix``."""
    consumer = Consumer({**client, "group.id": f"{topic}-count", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        needle = prefix.encode()
        found = 0
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            msgs = consumer.consume(10_000, timeout=0.5)
            if msgs:
                quiet_since = time.monotonic()
            found += sum(1 for m in msgs if m.error() is None and needle in (m.value() or b""))
        return found
    finally:
        consumer.close()
