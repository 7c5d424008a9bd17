"""A card bundle's extra fields through ``fraudstream serve``: the API produces them as the card
simulator and ``replay`` send them, so the detector computes the same features as for the same
records arriving on the stream; a wrong type is a 422 naming the field, and a retry must repeat
the extras."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest
import requests

from fraudstream.broker import free_port
from fraudstream.features import ExtraField
from fraudstream.model import Bundle, promote, train_bundle
from fraudstream.model._fdh import fdh_batch
from fraudstream.schema import CardRecord, encode_card
from fraudstream.simulate import CardSimulator, card_table

from ._api_stack import ApiServer, DetectorThread, api_env, detect_topic, make_keys, topics_of
from ._kafka_util import read_topic

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
EXTRAS = ("TX_CATEGORY", "TX_CHANNEL")
Message = tuple[CardRecord, dict[str, Any]]


@pytest.fixture(scope="module")
def card_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Bundle, list[Message]]:
    """A promoted card bundle trained with the simulator's two extras (seconds), and the
    simulator's next messages of six customers (state builds up), some extras absent or unseen."""
    root = tmp_path_factory.mktemp("card-models")
    sim = CardSimulator(customers=200, seed=6)
    frame = pl.from_arrow(card_table(sim.next_columns(20_000), sim.start_ms))
    assert isinstance(frame, pl.DataFrame)
    declared = [ExtraField(name, "categorical") for name in EXTRAS]
    bundle = train_bundle(
        fdh_batch(frame, EXTRAS), mode="card", gap_ms=DAY_MS, extras=declared, refit=True
    )
    bundle.save(root)
    promote(root, bundle.version)
    messages = sim.next_messages(3_000)
    customers = {"122", "158", "2", "108", "138", "81"}
    chosen = [(r, dict(x)) for r, x in messages if r.customerId in customers]
    for i, (_, extras) in enumerate(chosen):
        if i % 7 == 3:
            extras["TX_CHANNEL"] = None  # absent: a missing value on both paths
        if i % 11 == 5:
            extras["TX_CATEGORY"] = "crypto"  # unseen in training: its own code
    return root, Bundle.load(root / bundle.version), chosen


@pytest.fixture(scope="module")
def server(
    bootstrap: str,
    card_models: tuple[Path, Bundle, list[Message]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ApiServer, DetectorThread, Path, str]]:
    root, bundle, messages = card_models
    tmp = tmp_path_factory.mktemp("card-api")
    unique = uuid.uuid4().hex[:10]
    db = tmp / "api.db"
    env = api_env(bootstrap, unique, db, root, tmp, budget_ms=3_000)
    api = ApiServer(env, free_port(), tmp / "serve.log", tokens=make_keys(db))
    client = {"bootstrap.servers": bootstrap}
    detector = DetectorThread(client, unique, f"sqlite:///{db}", bundle, f"decisions-{unique}")
    try:
        api.start()
        detector.start()
        _wait_for_a_decision(api, messages[0][0].eventTimeMs - 3_600_000)
        yield api, detector, db, unique
    finally:
        detector.stop()
        api.stop()


def _wait_for_a_decision(api: ApiServer, event_time_ms: int, timeout_s: float = 90.0) -> None:
    """Until the detector answers: records of a customer and terminal of their own, before the
    sequence (no other customer's or terminal's features, no watermark change)."""
    deadline = time.monotonic() + timeout_s
    i = 0
    while time.monotonic() < deadline:
        i += 1
        warm = {"customerId": "C-warm", "terminalId": "T-warm", "amount": 5.0}
        body = {**warm, "eventTimeMs": event_time_ms, "txId": f"warm-{i}"}
        answer = api.post("/v1/decisions", body)
        assert answer.status_code == 200, answer.text
        if not answer.json()["fallback"]:
            return
    raise AssertionError("no decision from the detector")


def _body(record: CardRecord, extras: dict[str, Any]) -> dict[str, Any]:
    """The request: the record's fields and its extras, an absent one sent as null."""
    return {**msgspec.to_builtins(record), **extras}


def _features(db: Path, ids: list[str]) -> dict[str, bytes]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        marks = ", ".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT tx_id, features FROM transactions_enriched WHERE tx_id IN ({marks})", ids
        ).fetchall()
    return {t: bytes(f) for t, f in rows}


def test_extras_through_the_api_give_the_streams_features(
    bootstrap: str,
    card_models: tuple[Path, Bundle, list[Message]],
    server: tuple[ApiServer, DetectorThread, Path, str],
) -> None:
    _, bundle, messages = card_models
    api, _, db, unique = server
    client = {"bootstrap.servers": bootstrap}
    answers = [api.post("/v1/decisions", _body(r, x)) for r, x in messages]  # in sequence
    assert all(a.status_code == 200 for a in answers), answers[0].text
    ids = [str(r.txId) for r, _ in messages]
    n = len(ids)
    # the record produced is the one the simulator (and replay) sends, byte for byte
    sent = {r.txId: encode_card(r, x) for r, x in messages}
    produced = read_topic(client, topics_of(unique).transactions, expect=n + 1)
    values = {msgspec.json.decode(m.value())["txId"]: m.value() for m in produced}
    assert {i: values.get(i) for i in sent} == sent

    # the same records straight onto another topic, scored by a second real detector
    ref_db = db.with_name("ref.db")
    items = [(r.customerId.encode(), sent[r.txId]) for r, _ in messages]
    detect_topic(client, f"ref-{unique}", items, bundle, ref_db)
    via_api, via_stream = _features(db, ids), _features(ref_db, ids)
    assert len(via_api) == len(via_stream) == n
    differ = [i for i in ids if via_api[i] != via_stream[i]]
    assert not differ, f"features of {len(differ)} of {n} rows differ, first {differ[:3]}"
    # the extras were read (not missing), unseen values got their code, state built up
    x = np.stack([np.frombuffer(via_api[i], "<f4") for i in ids])
    names = bundle.feature_names
    category = x[:, names.index("TX_CATEGORY")]
    unseen = len(bundle.extras.categoricals[0].vocabulary)
    assert not np.isnan(category).any() and (category == unseen).sum() == (n + 5) // 11
    assert np.isnan(x[:, names.index("TX_CHANNEL")]).sum() == (n + 3) // 7
    assert np.nanmax(x[:, names.index("TX_CATEGORY_distinct_by_customer_1d")]) >= 2


def test_extras_are_validated_and_part_of_a_retry(
    card_models: tuple[Path, Bundle, list[Message]],
    server: tuple[ApiServer, DetectorThread, Path, str],
) -> None:
    _, _, messages = card_models
    api, _, _, unique = server
    record, extras = messages[0]
    base = _body(msgspec.structs.replace(record, txId=f"val-{unique}"), extras)
    for field, value in (("TX_CATEGORY", 5), ("TX_CHANNEL", ["pos"])):
        bad = api.post("/v1/decisions", {**base, field: value})
        assert bad.status_code == 422, bad.text
        detail = bad.json()["detail"][0]
        assert detail["loc"] == ["body", field] and "Expected `str | null`" in detail["msg"]
    undeclared = api.post("/v1/decisions", {**base, "TX_MCC": 5411})  # ignored, as the stream
    assert undeclared.status_code == 200, undeclared.text
    again = api.post("/v1/decisions", base)  # same content: the same decision
    assert again.status_code == 200 and again.json() == undeclared.json()
    other = api.post("/v1/decisions", {**base, "TX_CHANNEL": "online"})
    assert other.status_code == 409 and "extra fields" in other.json()["detail"]
    doc = requests.get(f"{api.base}/openapi.json", timeout=10).json()
    props = doc["components"]["schemas"]["CardRecordWithExtras"]["properties"]
    assert props["TX_CATEGORY"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
