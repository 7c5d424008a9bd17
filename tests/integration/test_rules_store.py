"""Rule-set versions, the audit trail, lists with expiry and the change token in the store
(``sinks.RuleStore``), each on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fraudstream.rules import Rule, RuleError
from fraudstream.sinks import ChangeToken, RuleStore

from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

MODE = "pre_auth"


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}", None
    return PG_URL, request.getfixturevalue("pg_schema")


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    return _url(request, tmp_path)


@pytest.fixture
def store(where: tuple[str, str | None]) -> Iterator[RuleStore]:
    url, schema = where
    with RuleStore(url, schema=schema) as s:
        yield s


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_every_change_is_a_version_with_its_audit_row(store: RuleStore) -> None:
    assert store.token(MODE) == ChangeToken(0, 0)
    assert store.current(MODE).version == 0 and store.load(MODE)[0] == 0
    big = Rule("big", 'type == "TRANSFER" and amount > 10_000', "review", description="big one")
    v1, d1 = store.add(MODE, big, author="ana", comment="first rule")
    assert v1.version == 1 and [d.kind for d in d1] == ["add"]
    assert v1.rules[0].author == "ana" and v1.comment == "first rule"
    v2, _ = store.set_status(MODE, "big", "live", author="bob", comment="go live")
    v3, _ = store.edit(MODE, "big", expression="amount > 20_000", priority=10, author="cy")
    v4, _ = store.add(MODE, Rule("night", "hour < 5", "review"), author="cy")
    v5, _ = store.remove(MODE, "night", author="dee", comment="too noisy")
    assert [v.version for v in (v2, v3, v4, v5)] == [2, 3, 4, 5]
    assert store.token(MODE).rules_version == 5
    assert store.token("post_tx").rules_version == 0  # versions are per mode

    rule = store.current(MODE).rules[0]
    assert (rule.expression, rule.priority, rule.status) == ("amount > 20_000", 10, "live")
    assert rule.author == "ana"  # who wrote it; the editors are in the audit trail
    assert store.at_version(MODE, 1).rules == (replace(big, author="ana"),)
    assert [r.id for r in store.at_version(MODE, 4).rules] == ["big", "night"]
    with pytest.raises(RuleError, match="no version 9 of the pre_auth rule set"):
        store.at_version(MODE, 9)

    history = store.history(MODE)
    assert [(c.version, c.rule_id, c.change, c.author) for c in history] == [
        (5, "night", "remove", "dee"),
        (4, "night", "add", "cy"),
        (3, "big", "edit", "cy"),
        (2, "big", "status", "bob"),
        (1, "big", "add", "ana"),
    ]
    edit = history[2]
    assert edit.before is not None and edit.after is not None
    assert (edit.before.expression, edit.after.expression) == (big.expression, "amount > 20_000")
    assert edit.diff.splitlines() == [
        "expression:",
        f"  - {big.expression}",
        "  + amount > 20_000",
        "priority: 100 -> 10",
    ]
    assert history[3].diff == "status: draft -> live" and history[3].comment == "go live"
    assert history[0].diff == "- review, priority 100, draft: hour < 5" and history[0].after is None
    assert [c.version for c in store.history(MODE, rule_id="big", limit=2)] == [3, 2]

    version, rules = store.load(MODE)
    assert version == 5 and rules.version == 5 and [r.id for r in rules.live] == ["big"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("amout > 1", "unknown field 'amout' in mode 'pre_auth' (did you mean amount"),
        ('amount > "5000"', 'cannot compare `amount` (number) with `"5000"` (string)'),
        ('nameDest in list("mule")', "unknown list 'mule' (lists: mules)"),
        ("amount >", "at column 9"),
    ],
)
def test_a_refused_rule_writes_nothing(store: RuleStore, expression: str, message: str) -> None:
    store.create_list("mules", kind="account", author="ana")
    store.add(MODE, Rule("ok", "amount > 1", "review", status="live"), author="ana")
    before = (store.token(MODE), store.current(MODE), store.history(MODE))
    for attempt in (
        lambda: store.add(MODE, Rule("bad", expression, "block"), author="eve"),
        lambda: store.edit(MODE, "ok", expression=expression, author="eve"),
        lambda: store.import_rules(MODE, [Rule("bad", expression, "block")], author="eve"),
    ):
        with pytest.raises(RuleError, match="column") as caught:
            attempt()
        assert message in str(caught.value)
        assert (store.token(MODE), store.current(MODE), store.history(MODE)) == before


def test_refusals_of_the_set_itself(store: RuleStore) -> None:
    store.add(MODE, Rule("a", "amount > 1", "review"), author="ana")
    for attempt, message in [
        (lambda: store.add(MODE, Rule("a", "amount > 2", "review"), author="x"), "exists already"),
        (lambda: store.edit(MODE, "zz", priority=1, author="x"), "no rule 'zz'"),
        (lambda: store.remove(MODE, "zz", author="x"), "no rule 'zz'"),
        (lambda: store.set_status(MODE, "a", "on", author="x"), "unknown status 'on'"),  # type: ignore[arg-type]
        (lambda: store.add(MODE, Rule("b", "amount > 2", "review"), author=" "), "no author"),
        (lambda: store.add("pre-auth", Rule("b", "amount > 2", "review"), author="x"), "mode"),
    ]:
        with pytest.raises(RuleError, match=message):
            attempt()
    assert store.token(MODE).rules_version == 1
    # no change, no version
    v, delta = store.edit(MODE, "a", expression="amount > 1", author="x")
    assert (v.version, delta) == (1, [])


def test_import_is_idempotent_and_replace_removes(store: RuleStore) -> None:
    pack = [
        Rule("a", "amount > 1", "review", author="packer"),
        Rule("b", "score > 0.9", "block", status="shadow"),
    ]
    v, delta = store.import_rules(MODE, pack, author="ana", comment="pack 1")
    assert v.version == 1 and [(d.rule_id, d.kind) for d in delta] == [("a", "add"), ("b", "add")]
    assert {r.id: r.author for r in v.rules} == {"a": "packer", "b": "ana"}
    assert store.import_rules(MODE, pack, author="bob")[1] == []  # again: nothing written
    store.add(MODE, Rule("c", "hour < 5", "review"), author="ana")
    changed = [Rule("a", "amount > 2", "review"), pack[1]]
    v, delta = store.import_rules(MODE, changed, author="bob", replace_all=True)
    assert v.version == 3 and [(d.rule_id, d.kind) for d in delta] == [
        ("a", "edit"),
        ("c", "remove"),
    ]
    assert {r.id: r.author for r in v.rules} == {"a": "packer", "b": "ana"}  # authors kept
    assert len(store.history(MODE)) == 5


def test_lists_entries_expiry_and_audit(store: RuleStore) -> None:
    store.create_list("mules", kind="account", description="known mules", author="ana")
    store.create_list("empty", kind="merchant", author="ana")
    with pytest.raises(RuleError, match="exists already"):
        store.create_list("mules", kind="account", author="ana")
    assert store.token(MODE).lists_seq == 2
    now = _now_ms()
    seq = store.add_entries("mules", ["C1", "C2", "C1"], author="ana", reason="case 7")
    assert seq == 4 and store.token(MODE).lists_seq == 4
    soon = now + 60_000
    seq = store.add_entries("mules", ["C3", "Ünïcode ✓"], author="bob", expires_at_ms=soon)
    snap = store.lists_snapshot()
    assert snap.lists == {"mules": frozenset({"C1", "C2", "C3", "Ünïcode ✓"}), "empty": frozenset()}
    assert (snap.seq, snap.next_expiry_ms) == (seq, soon)
    later = store.lists_snapshot(at_ms=soon)  # an entry expires at its expiry time
    assert later.lists["mules"] == {"C1", "C2"} and later.next_expiry_ms is None
    # renewing an entry replaces its expiry
    store.add_entries("mules", ["C3"], author="cy", reason="still active")
    assert store.lists_snapshot(at_ms=soon + 1).lists["mules"] == {"C1", "C2", "C3"}
    entries = {e.value: e for e in store.entries("mules")}
    assert entries["C3"].added_by == "cy" and entries["C3"].expires_at_ms is None
    assert entries["C1"].reason == "case 7"

    token = store.token(MODE)
    for attempt, message in [
        (lambda: store.remove_entries("mules", ["C1", "nope"], author="x"), "has no 'nope'"),
        (lambda: store.add_entries("ghost", ["C1"], author="x"), "no list 'ghost'"),
        (lambda: store.add_entries("mules", ["C9"], author="x", expires_at_ms=now), "future"),
        (lambda: store.add_entries("mules", [""], author="x"), "1 to 256 characters"),
        (lambda: store.create_list("bad name", kind="x", author="x"), "bad list name"),
    ]:
        with pytest.raises(RuleError, match=message):
            attempt()
    assert store.token(MODE) == token  # nothing written
    store.remove_entries("mules", ["C1"], author="dee", reason="cleared")
    assert "C1" not in store.lists_snapshot().lists["mules"]
    infos = {i.name: i for i in store.lists()}
    assert (infos["mules"].entries, infos["mules"].expired, infos["mules"].kind) == (
        3,
        0,
        "account",
    )
    log = store.list_history("mules")
    assert [(c.change, c.value, c.author) for c in log[:2]] == [
        ("remove", "C1", "dee"),
        ("add", "C3", "cy"),
    ]
    assert log[-1].change == "create" and log[-1].value is None
    assert [c.seq for c in store.list_history()] == list(range(store.token(MODE).lists_seq, 0, -1))


def test_loaded_rules_decide_with_the_lists_in_force(store: RuleStore) -> None:
    store.create_list("mules", kind="account", author="ana")
    store.add_entries("mules", ["M1"], author="ana")
    rule = Rule("mules", 'nameDest in list("mules")', "block", status="live")
    store.add(MODE, rule, author="ana")
    _, rules = store.load(MODE)
    snap = store.lists_snapshot()
    decided = rules.decide({"counterparty": ["M1", "M2"]}, [0, 0], snap.lists)
    assert decided.decision.tolist() == [2, 0] and decided.fired == [("mules",), ()]


def test_concurrent_writers_get_consecutive_versions(where: tuple[str, str | None]) -> None:
    url, schema = where
    with RuleStore(url, schema=schema) as s:  # migrate once
        s.create_list("l", kind="account", author="setup")
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with RuleStore(url, schema=schema) as s:
                for i in range(5):
                    s.add(MODE, Rule(f"{name}{i}", f"amount > {i}", "review"), author=name)
                    s.add_entries("l", [f"{name}{i}"], author=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with RuleStore(url, schema=schema) as s:
        assert s.current(MODE).version == 15 and len(s.current(MODE).rules) == 15
        assert sorted(c.version for c in s.history(MODE)) == list(range(1, 16))
        for v in range(1, 16):
            assert len(s.at_version(MODE, v).rules) == v
        assert [c.seq for c in s.list_history()] == list(range(16, 0, -1))
        assert len(s.lists_snapshot().lists["l"]) == 15
