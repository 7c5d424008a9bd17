"""The fraud team's rules and lists acting in a running detector (issue 19): a list entry and a
rule added while it runs take effect within 5 s without a restart; a malformed rule is refused
(when saved, and when a broken version reaches the store) and the set in force stays; the
decision order is allow > block > review > model; the rules fired are stored and on the alerts
topic; no row is lost or duplicated. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from confluent_kafka import Producer

from fraudstream.dashboard import Database
from fraudstream.model import Bundle
from fraudstream.rules import Rule, RuleError
from fraudstream.sinks import RuleStore, open_store
from fraudstream.stream import DetectorTopics, ensure_topics

from ._kafka_util import build_detector, read_topic

pytestmark = pytest.mark.integration

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
WHO = "tester"
#: decision codes and the order rules act in
ALLOW, REVIEW, BLOCK = 0, 1, 2
EFFECT_S = 5.0

RULES = [
    Rule("trust", 'nameOrig in list("trusted")', "allow", status="live"),
    Rule("mule", 'nameDest in list("mules")', "block", status="live"),
    Rule("watch", 'nameOrig in list("watch")', "review", status="live"),
    Rule("big_transfer", 'type == "TRANSFER" and amount > 50_000', "review", status="shadow"),
]


def record(tx_id: str, orig: str, dest: str, amount: float = 120.0) -> tuple[bytes, bytes]:
    doc = {"step": 1, "type": "TRANSFER", "amount": amount, "nameOrig": orig, "nameDest": dest}
    return orig.encode(), msgspec.json.encode({**doc, "txId": tx_id})


class Feed:
    """Produces to the source topic from the test's thread."""

    def __init__(self, client: dict[str, str], topic: str) -> None:
        self.producer = Producer({**client, "linger.ms": 2})
        self.topic = topic
        self.count = 0

    def send(self, items: list[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.producer.produce(self.topic, key=key, value=value)
        assert self.producer.flush(30) == 0
        self.count += len(items)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", None
    else:
        schema = request.getfixturevalue("pg_schema")
        yield PG_URL, schema


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_rules_and_lists_act_live(
    client: dict[str, str],
    unique: str,
    bundle: Bundle,
    store_url: tuple[str, str | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, schema = store_url
    caplog.set_level(logging.INFO, logger="fraudstream.stream._rules")
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=2)
    rules = RuleStore(url, schema=schema).open()
    for name in ("trusted", "mules", "watch"):
        rules.create_list(name, kind="account", author=WHO)
    rules.add_entries("trusted", ["C_TRUST"], author=WHO)
    rules.add_entries("watch", ["C_WATCH"], author=WHO)
    first, _ = rules.import_rules("pre_auth", RULES, author=WHO)

    store = open_store(url, schema=schema)
    store.open()
    db = Database(url, schema=schema)
    feed = Feed(client, topics.source)
    detector = build_detector(client, topics, f"g-{unique}", store, bundle, batch_max=300)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            detector.run(stop.is_set)
        except BaseException as exc:  # surfaced by the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stored(tx_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        marks = ", ".join("?" * len(tx_ids))
        rows = db.rows(
            "SELECT tx_id, decision, score, rules_fired, rules_shadow, rule_set_version, "
            f"processed_at_ms FROM transactions_enriched WHERE tx_id IN ({marks})",
            tx_ids,
        )
        return {r[0]: r[1:] for r in rows}

    def markers(phase: str) -> dict[str, list[str]]:
        """Rows whose rules are known for each phase: kind → tx ids (sent with background)."""
        kinds = {"watch": ("C_WATCH", "M_1"), "trust_mule": ("C_TRUST", "M_MULE")}
        kinds |= {"watch_mule": ("C_WATCH", "M_MULE"), "plain": ("C_PLAIN", "M_2")}
        out: dict[str, list[str]] = {}
        items: list[tuple[bytes, bytes]] = []
        for kind, (orig, dest) in kinds.items():
            out[kind] = [f"{phase}-{kind}-{i}" for i in range(4)]
            items += [record(t, orig, dest) for t in out[kind]]
        items.append(record(f"{phase}-shadow", "C_PLAIN", "M_3", amount=60_000.0))
        rng = np.random.default_rng(int(phase[1:]))  # background traffic, event time = now
        orig, dest = rng.integers(0, 300, 600).tolist(), rng.integers(0, 100, 600).tolist()
        amounts = rng.lognormal(5, 2, 600).round(2).tolist()
        for i, (a, m, amount) in enumerate(zip(orig, dest, amounts, strict=True)):
            items.append(record(f"{phase}-bg-{i}", f"C{a}", f"M{m}", amount))
        ids = [t for ts in out.values() for t in ts] + [f"{phase}-shadow"]
        feed.send(items)
        wait_for(f"phase {phase}", lambda: len(stored(ids)) == len(ids))
        return out

    def probe_until(tag: str, orig: str, dest: str, rule: str, since_ms: int) -> float:
        """Send a probe every 100 ms until one is stored with ``rule`` fired; then 1 s more.
        Returns the seconds from ``since_ms`` (the change committed) to the first row decided
        with it, and checks no row processed later than 5 s after the change missed it."""
        probes: list[str] = []
        deadline = time.monotonic() + 15
        hit_at: float | None = None
        while time.monotonic() < deadline and (hit_at is None or time.monotonic() < hit_at + 1):
            probes.append(f"{tag}-{len(probes)}")
            feed.send([record(probes[-1], orig, dest)])
            if hit_at is None and any(
                rule in json.loads(r[2] or "[]") for r in stored(probes).values()
            ):
                hit_at = time.monotonic()
            time.sleep(0.1)
        wait_for(f"{tag} probes", lambda: len(stored(probes)) == len(probes))
        rows = stored(probes)
        fired_ms = [r[5] for r in rows.values() if rule in json.loads(r[2] or "[]")]
        missed_ms = [r[5] for r in rows.values() if rule not in json.loads(r[2] or "[]")]
        assert fired_ms, f"{rule} never took effect"
        assert all(ms <= since_ms + EFFECT_S * 1000 for ms in missed_ms), (since_ms, missed_ms)
        return (min(fired_ms) - since_ms) / 1000

    try:
        # phase 1: the rules in force at start, with an empty mules list
        p1 = markers("p1")
        # a list entry added while running
        at_ms = time.time_ns() // 1_000_000
        rules.add_entries("mules", ["M_MULE"], author=WHO, reason="confirmed mule")
        list_effect_s = probe_until("list", "C_P1", "M_MULE", "mule", at_ms)
        p2 = markers("p2")
        # a malformed rule is refused when saved: nothing changes
        token = rules.token("pre_auth")
        with pytest.raises(RuleError, match="unknown field 'amout'"):
            rules.add("pre_auth", Rule("bad", "amout > 1", "block", status="live"), author=WHO)
        assert rules.token("pre_auth") == token
        # a rule added while running
        at_ms = time.time_ns() // 1_000_000
        second, _ = rules.add(
            "pre_auth", Rule("new_rule", 'nameOrig == "C_NEW"', "block", status="live"), author=WHO
        )
        rule_effect_s = probe_until("rule", "C_NEW", "M_9", "new_rule", at_ms)
        # a version the detector cannot load (written without validation) leaves the set
        broken = [asdict(r) for r in second.rules]
        broken.append(asdict(Rule("broken", "amount >", "block", status="live", author=WHO)))
        with rules.db.transaction("insert a raw version", "rule_set_versions") as tx:
            tx.execute(
                "INSERT INTO rule_set_versions "
                "(mode, version, rules, author, created_at_ms, comment) VALUES (?, ?, ?, ?, ?, ?)",
                ("pre_auth", second.version + 1, json.dumps(broken), WHO, at_ms, "raw"),
            )
        refused = [f"refused-{i}" for i in range(int(EFFECT_S / 0.1))]
        for tx_id in refused:  # rules are polled between batches: keep them coming
            feed.send([record(tx_id, "C_NEW", "M_9")])
            if "is refused" in caplog.text:
                break
            time.sleep(0.1)
        assert "is refused" in caplog.text
        p3 = markers("p3")
    finally:
        stop.set()
        thread.join(60)
        store.close()
    assert not failed, failed

    # versions: p1 under the first, p2 under the same (a list changed), p3 kept the second
    for phase, version in ((p1, first.version), (p2, first.version), (p3, second.version)):
        for row in stored([t for ts in phase.values() for t in ts]).values():
            assert row[4] == version

    def model_decision(score: float) -> int:
        return int(bundle.decide(np.array([score]))[0])

    def check(phase: dict[str, list[str]], fired: dict[str, tuple[str, ...]]) -> None:
        for kind, tx_ids in phase.items():
            for tx_id, (decision, score, live, _shadow, _v, _) in stored(tx_ids).items():
                assert tuple(json.loads(live or "[]")) == fired[kind], (tx_id, live)
                model = model_decision(score)
                expected = {
                    ("trust",): ALLOW,
                    ("trust", "mule"): ALLOW,  # allow beats block
                    ("mule", "watch"): BLOCK,  # block beats review
                    ("watch",): max(model, REVIEW),  # review never lowers a model block
                    (): model,
                }[fired[kind]]
                assert decision == ("allow", "review", "block")[expected], (tx_id, decision)

    before = {"watch": ("watch",), "trust_mule": ("trust",), "watch_mule": ("watch",)}
    after = {"watch": ("watch",), "trust_mule": ("trust", "mule"), "watch_mule": ("mule", "watch")}
    check(p1, {**before, "plain": ()})
    check(p2, {**after, "plain": ()})
    check(p3, {**after, "plain": ()})

    # shadow rules are recorded and never act
    shadow = stored(["p1-shadow", "p2-shadow", "p3-shadow"])
    for _tx, (decision, score, live, shadow_ids, _v, _) in shadow.items():
        assert json.loads(shadow_ids) == ["big_transfer"] and live is None
        assert decision == ("allow", "review", "block")[model_decision(score)]

    # every record once; the alerts topic and table carry the rules fired, for every
    # review/block row and only those (a rule's review of a model allow is an alert, an
    # allow rule's row is not)
    (total,) = db.one("SELECT count(*) FROM transactions_enriched") or (0,)
    (distinct,) = db.one("SELECT count(DISTINCT tx_id) FROM transactions_enriched") or (0,)
    assert total == distinct == feed.count
    alerts = {
        a: (d, json.loads(f) if f else [], v)
        for a, d, f, v in db.rows(
            "SELECT alert_id, decision, rules_fired, rule_set_version FROM fraud_alerts"
        )
    }
    flagged = db.rows("SELECT tx_id FROM transactions_enriched WHERE decision <> 'allow'")
    assert set(alerts) == {r[0] for r in flagged}
    messages = read_topic(client, topics.alerts, expect=len(alerts))
    on_topic = {
        m["alert_id"]: (m["decision"], m["rules_fired"], m["rule_set_version"])
        for m in (json.loads(msg.value()) for msg in messages)
    }
    assert on_topic == alerts
    assert all(alerts[t][1] == ["watch"] for t in p1["watch"])  # raised by a rule
    assert not any(t in alerts for t in p2["trust_mule"])  # allowed by a rule
    assert all(alerts[t][:2] == ("block", ["mule", "watch"]) for t in p2["watch_mule"])

    print(f"list entry took effect in {list_effect_s:.2f} s, new rule in {rule_effect_s:.2f} s")
    assert 0 <= list_effect_s <= EFFECT_S and 0 <= rule_effect_s <= EFFECT_S
