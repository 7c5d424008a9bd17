"""The real Prometheus server scrapes a real ``fraudstream detect``, ``fraudstream notify`` and
``fraudstream serve`` (processes on the embedded broker; the detector's PostgreSQL store behind a
proxy the test cuts) and its HTTP API shows what they did: counts equal to what was sent, a
store outage while it lasts, lag per partition back to 0, API requests by route and status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec
import pytest

from fraudstream.api import create_key
from fraudstream.broker import free_port, port_open
from fraudstream.dashboard import Database
from fraudstream.model import Bundle
from fraudstream.schema import PaySimRecord, encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.stream import ensure_topics
from tests.unit.test_notify import Hook

from ._kafka_util import produce_raw, read_topic
from ._pg_util import PG_URL
from ._procs import detector_env
from .test_backpressure import PG, TcpProxy

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the prometheus binary is missing (`make prometheus` installs Debian's package)",
    ),
]

PARTITIONS = 3
#: detect and notify listen here (METRICS_HOST), not on 127.0.0.1: the whole 127/8 is loopback
METRICS_HOST = "127.0.0.2"
MALFORMED = [
    b"not json",
    b'{"type": "PAYMENT"}',
    b'{"step": 1, "type": "TRANSFER", "amount": -5.0, "nameOrig": "C1", "nameDest": "C2"}',
    b'{"step": 1, "type": "TELEPORT", "amount": 5.0, "nameOrig": "C1", "nameDest": "C2"}',
]

Series = dict[str, float]  # the value of each series, by its labels as JSON


class Prometheus:
    """A Prometheus server with its data in ``root``, scraping ``targets`` (job → host:port)
    every second, on a free port of 127.0.0.1."""

    def __init__(self, root: Path, targets: dict[str, str]) -> None:
        assert PROMETHEUS is not None
        config = {  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [addr]}]}
                for job, addr in targets.items()
            ],
        }
        (root / "prometheus.yml").write_text(json.dumps(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = root / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={root / 'prometheus.yml'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                f"--storage.tsdb.path={root / 'tsdb'}",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        assert wait_until(self._ready, 60), self.log.read_text()[-3000:]

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> Series:
        """``expr`` evaluated now through ``/api/v1/query``: value by labels (as JSON)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return {
            json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
            for r in body["data"]["result"]
        }

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (``None``: no series)."""
        series = self.query(expr)
        assert len(series) <= 1, series
        return next(iter(series.values()), None)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def wait_until(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.5)
    return False


class Procs:
    """``fraudstream`` commands started by the test, each logging to its own file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        out = (self.root / f"{name}.log").open("wb")
        cmd = [sys.executable, "-m", "fraudstream", *args]
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.started.append((name, proc, out))
        return proc

    def alive(self) -> None:
        for name, proc, _ in self.started:
            assert proc.poll() is None, f"{name} exited:\n{self.tail(name)}"

    def tail(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> dict[str, int]:
        """SIGTERM to each (a clean stop), then their exit codes."""
        codes = {}
        for name, proc, out in self.started:
            proc.terminate()
            try:
                codes[name] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(timeout=30)
            out.close()
        self.started = []
        return codes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    running = Procs(tmp_path)
    yield running
    running.stop()


@dataclass
class Run:
    """The processes of one test, the Prometheus server scraping them, and their topics."""

    prom: Prometheus
    procs: Procs
    client: dict[str, str]
    unique: str

    def reaches(
        self, expr: str, want: Callable[[float | None], bool], timeout_s: float = 120
    ) -> None:
        """Wait until ``want`` holds for the value of ``expr`` (every process still running)."""

        def ok() -> bool:
            self.procs.alive()
            return want(self.prom.value(expr))

        if not wait_until(ok, timeout_s):
            raise AssertionError(f"{expr} = {self.prom.value(expr)}\n{self.procs.tail('detect')}")


def test_prometheus_scrapes_detect_notify_and_serve(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    models_dir: Path,
    bundle: Bundle,
    pg_schema: str,
    procs: Procs,
) -> None:
    tx, alerts = f"tx-{unique}", f"alerts-{unique}"
    ensure_topics(client, [tx, alerts, f"dlq-{unique}"], partitions=PARTITIONS)
    proxy = TcpProxy(PG)  # the detector's store, cut below
    hook = Hook(statuses=[500, 500])  # the first notification is retried twice
    ports = {"detect": free_port(), "notify": free_port(), "serve": free_port()}
    env = {
        **detector_env(bootstrap, unique, tmp_path / "unused.db", models_dir, tmp_path),
        "FRAUDSTREAM_API__DECISIONS_TOPIC": f"decisions-{unique}",
    }
    detect_env = {
        **env,
        "FRAUDSTREAM_STORE__URL": f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema,
        "FRAUDSTREAM_DETECT__METRICS_PORT": str(ports["detect"]),
        "FRAUDSTREAM_DETECT__METRICS_HOST": METRICS_HOST,
    }
    notify_env = {
        **env,
        "FRAUDSTREAM_STORE__URL": f"sqlite:///{tmp_path / 'notify.db'}",
        "FRAUDSTREAM_NOTIFY__GROUP_ID": f"n-{unique}",
        "FRAUDSTREAM_NOTIFY__CHANNELS": '["webhook"]',
        "FRAUDSTREAM_NOTIFY__DECISIONS": '["review", "block"]',
        "FRAUDSTREAM_NOTIFY__WEBHOOK_URL": hook.url,
        "FRAUDSTREAM_NOTIFY__RATE_PER_S": "1000",
        "FRAUDSTREAM_NOTIFY__BACKOFF_INITIAL_S": "0.05",
        "FRAUDSTREAM_NOTIFY__METRICS_PORT": str(ports["notify"]),
        "FRAUDSTREAM_NOTIFY__METRICS_HOST": METRICS_HOST,
    }
    serve_env = {**env, "FRAUDSTREAM_STORE__URL": PG_URL, "FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema}
    procs.start("detect", detect_env, "detect", "--quiet", "--batch-max", "500")
    procs.start("notify", notify_env, "notify")
    procs.start("serve", serve_env, "serve", "--port", str(ports["serve"]))
    token = _api_key(pg_schema)
    hosts = {"detect": METRICS_HOST, "notify": METRICS_HOST, "serve": "127.0.0.1"}
    targets = {job: f"{hosts[job]}:{port}" for job, port in ports.items()}
    run = Run(Prometheus(tmp_path, targets), procs, client, unique)
    try:
        run.reaches('sum(up{job=~"detect|notify|serve"})', lambda v: v == len(ports), 90)
        for job in ("detect", "notify"):  # only where METRICS_HOST says
            assert not port_open("127.0.0.1", ports[job]), job
        sent_at = time.monotonic()
        valid, consumed = _stream_through_an_outage(run, proxy)
        requests = _decide_through_the_api(run, f"http://{targets['serve']}", token)
        _detector_figures(run, valid + requests, consumed + requests, bundle, sent_at)
        _notifier_figures(run, alerts, hook)
        _api_figures(run, requests)
    finally:
        codes = procs.stop()
        run.prom.close()
        proxy.close()
        hook.close()
    assert codes["detect"] == codes["notify"] == 0, codes  # a clean stop on SIGTERM


def _api_key(schema: str) -> str:
    """A new ``decide`` key of the API, in the store's ``schema``."""
    db = Database(PG_URL, schema=schema)
    db.migrate()
    try:
        return create_key(db, "prometheus-test", ("decide",)).token
    finally:
        db.close()


def _stream_through_an_outage(run: Run, proxy: TcpProxy) -> tuple[int, int]:
    """Records to the detector, some malformed, then more while its store is cut: the valid
    records and all the records sent."""
    sim = PaySimSimulator(accounts=2_000, seed=31)
    first, second = sim.next_batch(2_000), sim.next_batch(1_500)
    items = _records(first)
    for i, bad in enumerate(MALFORMED):
        items.insert(300 * i + 7, (b"C1", bad))
    tx = f"tx-{run.unique}"
    produce_raw(run.client, tx, items)
    run.reaches("fraudstream_transactions_scored_total", lambda v: v == len(first))
    run.reaches("fraudstream_end_to_end_latency_seconds_count", lambda v: v == len(items))

    proxy.cut()  # the store goes away: consumption pauses, nothing committed
    produce_raw(run.client, tx, _records(second))
    run.reaches("fraudstream_store_outage", lambda v: v == 1, 60)
    run.reaches("fraudstream_store_retries_total", lambda v: v is not None and v > 0, 60)
    run.reaches("sum(fraudstream_consumer_partition_lag_records)", lambda v: bool(v and v > 0))
    assert run.prom.value("fraudstream_end_to_end_latency_seconds_count") == len(items)
    proxy.restore()
    run.reaches("fraudstream_store_outage", lambda v: v == 0)
    return len(first) + len(second), len(items) + len(second)


def _decide_through_the_api(run: Run, url: str, token: str, n: int = 20) -> int:
    """``n`` decisions asked of ``fraudstream serve``, one without a key (401) and one invalid
    (422): the transactions it produced."""
    for i in range(n):
        body = {"step": 1, "type": "TRANSFER", "amount": 100.0 + i, "nameOrig": f"C-api-{i % 4}"}
        body |= {"nameDest": "M-api", "txId": f"api-{run.unique}-{i}"}
        assert _post(f"{url}/v1/decisions", body, token) == 200
    assert _post(f"{url}/v1/decisions", body, "") == 401
    assert _post(f"{url}/v1/decisions", {**body, "amount": -1.0}, token) == 422
    return n


def _post(url: str, body: dict[str, object], token: str) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _detector_figures(run: Run, valid: int, consumed: int, bundle: Bundle, sent_at: float) -> None:
    prom = run.prom
    run.reaches("fraudstream_end_to_end_latency_seconds_count", lambda v: v == consumed)
    lag = 'fraudstream_consumer_partition_lag_records{job="detect"}'
    assert wait_until(lambda: _all_zero(prom.query(lag), PARTITIONS), 60), prom.query(lag)
    elapsed_s = time.monotonic() - sent_at
    # the counters follow the detector's totals at most once a second (the histogram per
    # batch), and Prometheus scrapes once a second: they catch up within seconds, all together
    run.reaches("fraudstream_transactions_scored_total", lambda v: v == valid, 30)
    assert prom.value("fraudstream_records_consumed_total") == consumed
    assert prom.value("fraudstream_dead_letters_total") == len(MALFORMED)
    assert prom.value("sum(fraudstream_decisions_total)") == valid
    assert prom.value("fraudstream_batch_records_sum") == consumed
    assert prom.value("fraudstream_store_rejected_rows_total") == 0
    assert prom.value(f'fraudstream_model_info{{version="{bundle.version}"}}') == 1
    assert prom.value("fraudstream_consumer_lag_records") == 0
    mean_latency = prom.value(
        "fraudstream_end_to_end_latency_seconds_sum / fraudstream_end_to_end_latency_seconds_count"
    )
    assert mean_latency is not None and 0 < mean_latency <= elapsed_s


def _notifier_figures(run: Run, alerts: str, hook: Hook) -> None:
    prom = run.prom
    alert_count = prom.value('sum(fraudstream_decisions_total{decision!="allow"})')
    published = read_topic(run.client, alerts, expect=int(alert_count or 0))
    ids = {msgspec.json.decode(m.value() or b"")["alert_id"] for m in published}
    assert alert_count == len(ids) > 0, "the run must raise alerts for the notifier's figures"
    run.reaches("sum(fraudstream_notify_alerts_total)", lambda v: v == len(published))
    run.reaches('fraudstream_notifications_sent_total{channel="webhook"}', lambda v: v == len(ids))
    assert sorted(hook.delivered) == sorted(ids)
    assert prom.value('fraudstream_notification_retries_total{channel="webhook"}') == 2
    assert prom.value('fraudstream_notifications_failed_total{channel="webhook"}') == 0
    assert prom.value("fraudstream_notify_held") == 0
    lag = 'fraudstream_notify_consumer_lag_records{job="notify"}'
    assert wait_until(lambda: _all_zero(prom.query(lag), PARTITIONS), 60), prom.query(lag)


def _api_figures(run: Run, requests: int) -> None:
    prom = run.prom
    count = 'sum(fraudstream_api_request_seconds_count{{route="/v1/decisions",status="{}"}})'
    run.reaches(count.format(200), lambda v: v == requests)
    assert prom.value(count.format(401)) == 1
    assert prom.value(count.format(422)) == 1
    assert prom.value("sum(fraudstream_api_decisions_total)") == requests


def _records(records: list[PaySimRecord]) -> list[tuple[bytes, bytes | None]]:
    return [(r.nameOrig.encode(), encode_paysim(r)) for r in records]


def _all_zero(series: Series, partitions: int) -> bool:
    """One series per partition, each 0."""
    return len(series) == partitions and all(v == 0 for v in series.values())
