"""A running decision API for the integration tests: ``fraudstream serve`` in its own process,
beside a real detector (in a thread of the test process) on the embedded broker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from fraudstream import stream
from fraudstream.api import create_key, revoke_key
from fraudstream.broker import free_port
from fraudstream.config import ApiSettings, DetectSettings, Settings, TopicSettings
from fraudstream.dashboard import Database
from fraudstream.model import Bundle
from fraudstream.sinks import open_store
from fraudstream.stream import Detector, ensure_topics

from ._kafka_util import _STATE_DIR


def topics_of(unique: str) -> TopicSettings:
    return TopicSettings(
        transactions=f"tx-{unique}",
        alerts=f"alerts-{unique}",
        dlq=f"dlq-{unique}",
        labels=f"labels-{unique}",
    )


class DetectorThread:
    """The real detector (``stream.build_detector``, answering on ``decisions``) in a thread,
    started and stopped at will."""

    def __init__(
        self,
        client: dict[str, str],
        unique: str,
        store_url: str,
        bundle: Bundle,
        decisions: str,
        **detect: Any,
    ) -> None:
        self.settings = Settings(
            topics=topics_of(unique),
            api=ApiSettings(decisions_topic=decisions),
            detect=DetectSettings(
                group_id=f"g-{unique}",
                batch_max=500,
                labels=False,
                snapshot_dir=_STATE_DIR,
                **detect,
            ),
        )
        self.client = client
        self.store_url = store_url
        self.bundle = bundle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.detector: Detector | None = None

    def start(self) -> None:
        store = open_store(self.store_url)
        store.open()
        self.detector = stream.build_detector(self.settings, self.bundle, store, client=self.client)
        self._stop.clear()
        detector = self.detector

        def run() -> None:
            try:
                detector.run(self._stop.is_set)
            finally:
                store.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            assert not self._thread.is_alive()
        self._thread = None


@dataclass
class ApiServer:
    """``fraudstream serve`` on a free port with the environment ``env``."""

    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_timeout_s: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "fraudstream", "serve", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the API did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, path: str, json: Any = None, *, scope: str = "all", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return requests.post(f"{self.base}{path}", json=json, headers=headers, timeout=30, **kw)

    def get(self, path: str, *, scope: str = "all", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return requests.get(f"{self.base}{path}", headers=headers, timeout=30, **kw)


def api_env(
    bootstrap: str, unique: str, db: Path, models_dir: Path, data_dir: Path, **api: Any
) -> dict[str, str]:
    """The environment of an API on the topics of :func:`topics_of` and the store ``db``;
    ``api`` sets ``FRAUDSTREAM_API__<NAME>``."""
    t = topics_of(unique)
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_TOPICS__TRANSACTIONS": t.transactions,
        "FRAUDSTREAM_TOPICS__ALERTS": t.alerts,
        "FRAUDSTREAM_TOPICS__DLQ": t.dlq,
        "FRAUDSTREAM_TOPICS__LABELS": t.labels,
        "FRAUDSTREAM_STORE__URL": f"sqlite:///{db}",
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_DATA_DIR": str(data_dir),
        "FRAUDSTREAM_API__DECISIONS_TOPIC": f"decisions-{unique}",
    }
    env.update({f"FRAUDSTREAM_API__{k.upper()}": str(v) for k, v in api.items()})
    return env


def make_keys(db: Path) -> dict[str, str]:
    """Keys for the tests: ``all`` scopes, one per scope, and one revoked ``decide`` key."""
    database = Database(f"sqlite:///{db}")
    database.migrate()
    try:
        tokens = {"all": create_key(database, "tests", ("decide", "label", "read")).token}
        for scope in ("decide", "label", "read"):
            tokens[scope] = create_key(database, f"only-{scope}", (scope,)).token  # type: ignore[arg-type]
        revoked = create_key(database, "revoked", ("decide",))
        revoke_key(database, revoked.key.key_id)
        tokens["revoked"] = revoked.token
        return tokens
    finally:
        database.close()


@dataclass
class Stack:
    server: ApiServer
    detector: DetectorThread
    db: Path
    unique: str
    client: dict[str, str]


@contextmanager
def open_stack(
    bootstrap: str,
    models_dir: Path,
    bundle: Bundle,
    tmp: Path,
    detect: dict[str, Any] | None = None,
    **api: Any,
) -> Iterator[Stack]:
    """An API server (settings ``api``) and its detector (settings ``detect``) on fresh topics
    and a SQLite store, once the detector answers."""
    unique = uuid.uuid4().hex[:10]
    db = tmp / "store.db"
    client = {"bootstrap.servers": bootstrap}
    env = api_env(bootstrap, unique, db, models_dir, tmp, **api)
    server = ApiServer(env, free_port(), tmp / "serve.log", tokens=make_keys(db))
    detector = DetectorThread(
        client, unique, f"sqlite:///{db}", bundle, f"decisions-{unique}", **(detect or {})
    )
    try:
        server.start()  # a server that never became ready is stopped too
        detector.start()
        wait_for_a_decision(server, unique)
        yield Stack(server, detector, db, unique, client)
    finally:
        detector.stop()
        server.stop()


def detect_topic(
    client: dict[str, str], ref: str, items: list[tuple[bytes, bytes]], bundle: Bundle, db: Path
) -> None:
    """``items`` (key, value) produced to a fresh topic ``ref``, scored by a real detector into
    the SQLite store ``db`` until idle: the stream's side of a comparison with the API's."""
    ensure_topics(client, [ref, f"{ref}-alerts", f"{ref}-dlq"], partitions=4)
    producer = stream.make_producer(client)  # as `replay` and `simulate` produce, in order
    for key, value in items:
        producer.produce(ref, key=key, value=value)
    assert producer.flush(30) == 0
    settings = Settings(
        topics=TopicSettings(transactions=ref, alerts=f"{ref}-alerts", dlq=f"{ref}-dlq"),
        detect=DetectSettings(group_id=f"g-{ref}", labels=False, snapshot_dir=_STATE_DIR),
    )
    store = open_store(f"sqlite:///{db}")
    store.open()
    try:
        stream.build_detector(settings, bundle, store, client=client).run(
            lambda: False, idle_exit_s=5.0
        )
    finally:
        store.close()


def record(tx_id: str, account: str = "C-api-1", amount: float = 120.0, **more: Any) -> dict:
    """A PaySim record as the API takes it."""
    return {
        "step": 1, "type": "TRANSFER", "amount": amount, "nameOrig": account,
        "nameDest": "M-api-1", "txId": tx_id, **more,
    }  # fmt: skip


def wait_for_a_decision(server: ApiServer, unique: str, timeout_s: float = 90.0) -> None:
    """Until the detector has joined its group and answers (a first record per try)."""
    deadline = time.monotonic() + timeout_s
    i = 0
    while time.monotonic() < deadline:
        i += 1
        answer = server.post("/v1/decisions", record(f"warm-{unique}-{i}", account="C-warm"))
        assert answer.status_code == 200, answer.text
        if not answer.json()["fallback"]:
            return
    raise AssertionError("no decision from the detector")
