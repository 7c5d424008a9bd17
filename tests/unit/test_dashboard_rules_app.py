"""The Rules & lists page under Streamlit's AppTest, over ``seed_rules_store``'s SQLite store and
a bundle of its mode: each rule's record, changes signed by the signed-in analyst (a refused rule
points at its fault and saves nothing), the backtest's figures against the seed, the lists, and
read-only for a viewer or without accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fraudstream.broker import free_port
from fraudstream.dashboard import APP, Database
from fraudstream.dashboard._access import recent_audit
from fraudstream.model import promote
from fraudstream.sinks import RuleStore

from .test_dashboard_rules import MULE, NEWEST_MS, PASSWORD, SEED, seed_rules_store

_TIMEOUT_S = 60
DAY_MS = 86_400_000


def _bundle(models: Path) -> None:
    """A bundle in service of the seed's mode (the page's default mode)."""
    bundle = models / "20240101T000000Z-rules"
    bundle.mkdir(parents=True)
    manifest = {"version": bundle.name, "mode": "pre_auth"}  # what the page reads of it
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    promote(models, bundle.name)


def _env(url: str, models: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _bundle(models)
    monkeypatch.setenv("FRAUDSTREAM_STORE__URL", url)
    monkeypatch.setenv("FRAUDSTREAM_MODELS_DIR", str(models))
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("FRAUDSTREAM_DASHBOARD__USER_HEADER", "")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield url
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    path = f"sqlite:///{tmp_path / 'store.db'}"
    seed_rules_store(path, {"ana": "analyst", "vic": "viewer"})
    yield from _env(path, tmp_path / "models", monkeypatch)


def _signed_in(name: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=_TIMEOUT_S).run()
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Sign in").click().run()
    at.switch_page("views/rules.py").run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state["rules_tab"] = name
    at.run()
    _ok(at)
    return at


def _plain(markdown: str) -> str:
    """Text the page escaped for Markdown (``md``), as the reader sees it."""
    return markdown.replace("\\", "")


def _submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    _ok(at)
    return at


def _current(url: str) -> tuple[int, dict[str, tuple[str, str, str]]]:
    with RuleStore(url) as store:
        v = store.current("pre_auth")
    return v.version, {r.id: (r.status, r.author, r.expression) for r in v.rules}


def test_the_rules_and_their_record(url: str) -> None:
    at = _signed_in("ana")
    assert [t.value for t in at.title] == ["Rules & lists"]
    assert any("version 1" in c.value and "by cy" in c.value for c in at.caption)
    table = at.dataframe[0].value.set_index("id")
    since = NEWEST_MS - 7 * DAY_MS  # the default range: the newest 7 days
    mules = [t for t in SEED if t.time_ms >= since and t.live]
    verdicts = [t.verdict for t in mules if t.verdict is not None]
    assert table.loc["mules", "hits"] == len(mules)
    assert table.loc["mules", "precision"] == f"{sum(verdicts) / len(verdicts):.1%}"
    recent = sum(t.time_ms >= since for t in SEED)
    assert table.loc["mules", "hit rate"] == f"{len(mules) / recent:.1%}"
    at.radio(key="rules_stats_range").set_value("everything").run()
    everything = at.dataframe[0].value.set_index("id")
    assert everything.loc["mules", "hits"] == sum(bool(t.live) for t in SEED)


def test_an_analyst_adds_edits_moves_and_removes_rules(url: str) -> None:
    at = _signed_in("ana")
    assert any("saved as **ana** (analyst)" in c.value for c in at.caption)
    # refused: an unknown field, shown with its position; nothing saved
    at.text_input(key="rule_add_id").input("bad")
    at.text_area(key="rule_add_condition").input('type == "TRANSFER" and amout > 10_000')
    _submit(at, "Add rule")
    errors = [_plain(e.value) for e in at.error]
    assert any("unknown field 'amout'" in e and "at column 24" in e for e in errors), errors
    assert any(c.value.endswith("^") for c in at.code)
    assert _current(url)[0] == 1
    # a valid rule: saved, signed by the signed-in analyst
    at.text_input(key="rule_add_id").input("night")
    at.text_area(key="rule_add_condition").input('type == "CASH_OUT" and hour < 6')
    _submit(at, "Add rule")
    assert any("now version 2, by ana" in _plain(s.value) for s in at.success)
    version, rules = _current(url)
    assert (version, rules["night"]) == (2, ("draft", "ana", 'type == "CASH_OUT" and hour < 6'))
    assert "night" in at.dataframe[0].value["id"].tolist()
    # shadow -> live, then pause; each a version by ana
    at.selectbox(key="rule_edit_id").set_value("big").run()
    at.button(key="rule_status_live").click().run()
    assert _current(url)[1]["big"][0] == "live"
    at.button(key="rule_status_paused").click().run()
    version, rules = _current(url)
    assert (version, rules["big"][0]) == (4, "paused")
    # an edit, then a removal (confirmed first)
    edit = next(
        t for t in at.text_area if t.key and t.key.endswith("_condition") and "big" in t.key
    )
    edit.input('type == "TRANSFER" and amount > 6_000')
    _submit(at, "Save changes")
    assert _current(url)[1]["big"][2] == 'type == "TRANSFER" and amount > 6_000'
    next(c for c in at.checkbox if c.label == "Remove big").check().run()
    at.button(key="rule_remove").click().run()
    _ok(at)
    version, rules = _current(url)
    assert (version, sorted(rules)) == (6, ["mules", "night"])
    with RuleStore(url) as store:
        assert {c.author for c in store.history("pre_auth") if c.version > 1} == {"ana"}
    actions = [e.action for e in recent_audit(Database(url), 5, "ana")]
    assert actions == [
        "rule removed",
        "rule edited",
        "rule moved to paused",
        "rule moved to live",
        "rule added",
    ]
    _tab(at, "History")
    assert "status: shadow -> live" in at.code[0].value


def test_backtest_of_the_rules_in_force_and_of_a_rule_being_written(url: str) -> None:
    at = _tab(_signed_in("vic"), "Backtest")  # a viewer may backtest
    _submit(at, "Run backtest")
    table = at.table[0].value.set_index("rule")
    since = NEWEST_MS - 7 * DAY_MS
    recent = [t for t in SEED if t.time_ms >= since]
    assert {m.label: m.value for m in at.metric}["Transactions"] == f"{len(recent):,}"
    mules = [t for t in recent if t.counterparty == MULE]
    labelled = [t for t in mules if t.label >= 0]
    assert table.loc["mules", "hits"] == f"{len(mules):,}"
    assert (
        table.loc["mules", "precision"] == f"{sum(t.label for t in labelled) / len(labelled):.1%}"
    )
    assert table.loc["mules", "hits/day"] == f"{len(mules) / _days(recent):,.1f}"
    at.radio(key="backtest_what").set_value("a rule not saved yet").run()
    at.text_input(key="backtest_(a new rule)_id").input("huge")
    at.text_area(key="backtest_(a new rule)_condition").input("amount > 7_000")
    _submit(at, "Run backtest")
    table = at.table[0].value.set_index("rule")
    assert list(table.index) == ["huge", "mules", "big"]
    assert table.loc["huge", "hits"] == f"{sum(t.amount > 7000 for t in recent):,}"
    at.text_area(key="backtest_(a new rule)_condition").input("amount > ")
    _submit(at, "Run backtest")
    assert any("Refused" in e.value for e in at.error)
    assert _current(url)[0] == 1  # a backtest saves nothing


def test_a_rule_being_edited_is_backtested_unsaved(url: str) -> None:
    at = _signed_in("ana")
    at.selectbox(key="rule_edit_id").set_value("big").run()
    edit = next(t for t in at.text_area if "_big_" in str(t.key))
    edit.input("amount > 6_500")
    _submit(at, "Backtest these changes")
    assert at.session_state["rules_tab"] == "Backtest"
    table = at.table[0].value.set_index("rule")
    recent = [t for t in SEED if t.time_ms >= NEWEST_MS - 7 * DAY_MS]
    assert table.loc["big", "hits"] == f"{sum(t.amount > 6500 for t in recent):,}"
    assert table.loc["big", "status"] == "draft"  # as written, not the stored shadow rule
    version, rules = _current(url)  # nothing saved
    assert (version, rules["big"]) == (1, ("shadow", "cy", 'type == "TRANSFER" and amount > 5_000'))


def _days(rows: list) -> float:  # type: ignore[type-arg]
    times = [t.time_ms for t in rows]
    return (max(times) - min(times)) / DAY_MS


def test_lists_entries_with_expiry(url: str) -> None:
    at = _tab(_signed_in("ana"), "Lists")
    assert at.dataframe[0].value["list"].tolist() == ["mules"]
    assert at.dataframe[1].value["value"].tolist() == [MULE]
    at.text_area(key="list_add_values").input("M7\nM8")
    at.selectbox(key="list_add_expiry").set_value("7 days")
    _submit(at, "Add entries")
    with RuleStore(url) as store:
        entries = {e.value: e for e in store.entries("mules")}
    assert sorted(entries) == [MULE, "M7", "M8"]
    assert entries["M7"].added_by == "ana"
    lifetime = entries["M7"].expires_at_ms - entries["M7"].added_at_ms  # type: ignore[operator]
    assert 0 <= 7 * DAY_MS - lifetime < 5_000  # from the click; the store stamps a moment later
    assert entries[MULE].expires_at_ms is None
    # removing: all the values chosen, signed; then a new list, selected at once
    at.multiselect(key="list_remove_values").select("M8").select(MULE)
    at.text_input(key="list_remove_reason").input("cleared")
    _submit(at, "Remove entries")
    at.text_input(key="list_new_name").input("trusted")
    _submit(at, "Create list")
    assert at.selectbox(key="list_name").value == "trusted"
    with RuleStore(url) as store:
        assert [e.value for e in store.entries("mules")] == ["M7"]
        changes = store.list_history(limit=2)
        assert [li.name for li in store.lists()] == ["mules", "trusted"]
    assert [(c.change, c.author) for c in changes] == [("create", "ana"), ("remove", "ana")]


def test_a_viewer_reads_only(url: str) -> None:
    at = _signed_in("vic")
    assert any("read-only" in i.value for i in at.info)
    assert not [b for b in at.button if b.label in ("Add rule", "Save changes", "Remove rule")]
    assert not [b for b in at.button if b.key and b.key.startswith("rule_status_")]
    _tab(at, "Lists")
    assert not [b for b in at.button if b.label in ("Add entries", "Create list")]
    assert _current(url)[0] == 1


def test_without_accounts_the_page_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"sqlite:///{tmp_path / 'bare.db'}"
    seed_rules_store(path)
    for _ in _env(path, tmp_path / "models", monkeypatch):
        at = AppTest.from_file(str(APP), default_timeout=_TIMEOUT_S).run()
        at.switch_page("views/rules.py").run()
        _ok(at)
        assert any("no dashboard account" in i.value for i in at.info)
        assert not [b for b in at.button if b.label == "Add rule"]
        assert at.dataframe[0].value["id"].tolist() == ["mules", "big"]
