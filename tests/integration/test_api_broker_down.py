"""The decision API never hangs: with its broker gone, a decision is the fallback within the
budget and ``/readyz`` says the broker is down (a broker of this test's own, stopped by it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fraudstream.broker import EmbeddedBroker, free_port

from ._api_stack import ApiServer, api_env, make_keys, record

pytestmark = pytest.mark.integration

BUDGET_MS = 300


def test_a_broker_outage_gives_fallbacks_within_the_budget(
    tmp_path: Path, models_dir: Path, unique: str
) -> None:
    db = tmp_path / "store.db"
    with EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log") as broker:
        env = api_env(
            broker.bootstrap_servers, unique, db, models_dir, tmp_path, budget_ms=BUDGET_MS
        )
        server = ApiServer(env, free_port(), tmp_path / "serve.log", tokens=make_keys(db))
        try:
            server.start()
            assert server.get("/readyz", scope="").json()["broker"] == "ok"
            broker.stop()
            for i in range(3):
                started = time.monotonic()
                answer = server.post("/v1/decisions", record(f"down-{unique}-{i}"))
                took_s = time.monotonic() - started
                assert answer.status_code == 200, answer.text
                assert answer.json()["fallback"] is True
                assert took_s < BUDGET_MS / 1000 + 1.0, took_s
            ready = server.get("/readyz", scope="")
            assert ready.status_code == 503 and ready.json()["broker"] != "ok"
            assert server.get("/healthz", scope="").status_code == 200
        finally:
            server.stop()
