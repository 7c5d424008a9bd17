"""``fraudstream serve`` against a real detector on the embedded broker: access, limits and
validation, decisions recorded once, retries, the fallback, labels and reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fraudstream.model import Bundle

from ._api_stack import Stack, open_stack, record, topics_of
from ._kafka_util import read_topic
from ._procs import count_rows

pytestmark = pytest.mark.integration

#: The test server's budget: generous, so a loaded machine does not turn answers into fallbacks
#: (the default 100 ms is what `bench --api` measures).
BUDGET_MS = 1_500


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, models_dir: Path, bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("api")
    with open_stack(
        bootstrap, models_dir, bundle, tmp, budget_ms=BUDGET_MS, key_cache_s=0, max_body_bytes=2_048
    ) as running:
        yield running


def _stored(db: Path, tx_id: str) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT decision, score, model_version FROM transactions_enriched WHERE tx_id = ?",
            (tx_id,),
        ).fetchall()


def _produced(stack: Stack, tx_id: str) -> int:
    """How many records of the transactions topic carry ``tx_id``."""
    topic = topics_of(stack.unique).transactions
    msgs = read_topic(stack.client, topic, expect=10**9, timeout_s=3.0)
    return sum(1 for m in msgs if msgspec.json.decode(m.value()).get("txId") == tx_id)


def test_access_limits_and_validation(stack: Stack) -> None:
    s = stack.server
    good = record(f"acc-{stack.unique}")
    missing = s.post("/v1/decisions", good, scope="")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    tokens = s.tokens
    s.tokens = {**tokens, "wrong": tokens["decide"][:-2] + "xx"}
    try:
        assert s.post("/v1/decisions", good, scope="wrong").status_code == 401
        assert s.post("/v1/decisions", good, scope="revoked").status_code == 401
        forbidden = s.post("/v1/decisions", good, scope="read")
        assert forbidden.status_code == 403 and "decide" in forbidden.json()["detail"]
        assert s.post("/v1/labels", {"tx_id": "x", "label": 1}, scope="decide").status_code == 403
        assert s.get("/v1/alerts", scope="label").status_code == 403
    finally:
        s.tokens = tokens
    big = s.post("/v1/decisions", record("big", fraudScenario="x" * 4_000))
    assert big.status_code == 413
    for field, value in (("amount", -5.0), ("type", "WIRE"), ("nameOrig", "")):
        bad = s.post("/v1/decisions", {**good, field: value})
        assert bad.status_code == 422, bad.text
        assert bad.json()["detail"][0]["loc"] == ["body", field]
    missing_field = s.post("/v1/decisions", {k: v for k, v in good.items() if k != "nameDest"})
    assert missing_field.status_code == 422
    assert missing_field.json()["detail"][0]["loc"] == ["body", "nameDest"]
    assert s.get("/v1/alerts?limit=0").status_code == 422
    # nothing refused reached the stream
    assert _produced(stack, good["txId"]) == 0 and _produced(stack, "big") == 0
    log = s.log.read_text()
    assert all(token[17:] not in log for token in tokens.values())  # no secret in any log line


def test_a_decision_is_recorded_once_and_a_retry_returns_it(stack: Stack) -> None:
    s, tx_id = stack.server, f"once-{stack.unique}"
    body = record(tx_id, account=f"C-once-{stack.unique}", amount=99_000.0)
    with ThreadPoolExecutor(6) as pool:  # concurrent duplicates: one record, one decision
        answers = list(pool.map(lambda _: s.post("/v1/decisions", body), range(6)))
    bodies = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers)
    first = bodies[0]
    assert not first["fallback"] and first["tx_id"] == tx_id
    assert first["decision"] in ("allow", "review", "block") and 0.0 <= first["score"] <= 1.0
    assert first["model_version"] == stack.detector.bundle.version
    assert {(b["decision"], b["score"], b["fallback"]) for b in bodies} == {
        (first["decision"], first["score"], False)
    }
    assert _stored(stack.db, tx_id) == [(first["decision"], first["score"], first["model_version"])]
    again = s.post("/v1/decisions", body).json()  # answered from the store
    assert again == first
    assert _produced(stack, tx_id) == 1 and len(_stored(stack.db, tx_id)) == 1
    other = s.post("/v1/decisions", {**body, "amount": 1.0})
    assert other.status_code == 409 and "txId" in other.json()["detail"]
    stored = s.get(f"/v1/transactions/{tx_id}").json()
    assert stored["decision"] == first["decision"] and stored["score"] == first["score"]
    assert set(stored["features"]) == set(stack.detector.bundle.feature_names)
    assert stored["features"]["amount"] == pytest.approx(99_000.0)
    assert s.get("/v1/transactions/never-sent").status_code == 404


def test_no_decision_within_the_budget_gives_the_fallback_and_the_record_still_counts(
    stack: Stack,
) -> None:
    s, tx_id = stack.server, f"late-{stack.unique}"
    body = record(tx_id, account=f"C-late-{stack.unique}")
    stack.detector.stop()
    try:
        started = time.monotonic()
        answer = s.post("/v1/decisions", body).json()
        took_s = time.monotonic() - started
        assert answer["fallback"] and answer["fallback_reason"] == "budget"
        assert answer["decision"] == "review" and answer["score"] is None  # the default fallback
        assert BUDGET_MS / 1000 <= took_s < BUDGET_MS / 1000 + 1.0  # never hangs
        assert s.post("/v1/decisions", body).json()["fallback"]  # a retry waits, not re-sent
        metrics = s.get("/metrics", scope="").text
        assert 'fraudstream_api_fallbacks_total{reason="budget"}' in metrics
    finally:
        stack.detector.start()
    deadline = time.monotonic() + 90
    while not _stored(stack.db, tx_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    (decision, score, _version), *_ = _stored(stack.db, tx_id)
    late = s.post("/v1/decisions", body).json()
    assert (late["decision"], late["score"], late["fallback"]) == (decision, score, False)
    assert _produced(stack, tx_id) == 1 and count_rows(stack.db, "transactions_enriched") > 0


def test_labels_reads_and_metrics(stack: Stack) -> None:
    s = stack.server
    tx_id = f"lab-{stack.unique}"
    decided = s.post("/v1/decisions", record(tx_id, account=f"C-lab-{stack.unique}")).json()
    assert not decided["fallback"]
    label = s.post("/v1/labels", {"tx_id": tx_id, "label": 1, "source": "chargeback"})
    assert label.status_code == 202, label.text
    accepted = label.json()
    published = read_topic(stack.client, topics_of(stack.unique).labels, expect=1)
    messages = [msgspec.json.decode(m.value()) for m in published]
    mine = [m for m in messages if m["tx_id"] == tx_id]
    assert len(mine) == 1 and mine[0]["label_id"] == accepted["label_id"]
    assert mine[0]["account"] == f"C-lab-{stack.unique}"  # completed from the store
    assert mine[0]["counterparty"] == "M-api-1" and mine[0]["source"] == "chargeback"
    bad = s.post("/v1/labels", {"tx_id": tx_id, "label": 3})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "label"]
    page = s.get("/v1/alerts", params={"limit": 2, "order": "newest"}).json()
    assert page["limit"] == 2 and len(page["alerts"]) <= 2 and page["total"] >= len(page["alerts"])
    for alert in page["alerts"]:
        assert alert["decision"] in ("review", "block") and alert["reasons"]
    ready = s.get("/readyz", scope="").json()
    assert ready == {"broker": "ok", "store": "ok", "model": "ok", "ready": True}
    metrics = s.get("/metrics", scope="").text
    assert 'route="/v1/decisions"' in metrics and 'status="401"' in metrics
    assert "fraudstream_api_decisions_total" in metrics
    assert "fraudstream_api_labels_total 1.0" in metrics
    # the detector answered on this instance's reply listener, not through the decisions topic
    assert 'fraudstream_api_answers_total{path="direct"}' in metrics
    assert 'fraudstream_api_answers_total{path="topic"}' not in metrics
