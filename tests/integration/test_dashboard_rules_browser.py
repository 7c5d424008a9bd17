"""The Rules & lists page in a real headless Chromium (Debian's, launched as the other browser
tests launch it), over ``seed_rules_store``'s SQLite store and a bundle of its mode.

An analyst signs in on the form and lists the rules; adds a valid rule (it appears, and the store
holds it signed by the analyst); tries a rule with an unknown field (the error and its position
are shown, the store is unchanged); moves the shadow rule live, then pauses it; adds a list entry
with an expiry; runs a backtest and reads the per-rule table against the seed, then backtests
a rule's unsaved edit from its form (nothing saved). A viewer then
finds no control that changes anything. No request may leave 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.config import Settings
from fraudstream.sinks import RuleStore

from ..unit.test_dashboard_rules import NEWEST_MS, PASSWORD, SEED, seed_rules_store
from ..unit.test_dashboard_rules_app import _bundle
from .test_dashboard_access_browser import _open, _sign_in, chromium  # noqa: F401 (fixture)

WAIT_MS = 60_000
DAY_MS = 86_400_000
TITLE = "Rules & lists"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    seed_rules_store(f"sqlite:///{path}", {"ana": "analyst", "vic": "viewer"})
    return path


def _rules(url: str) -> tuple[int, dict[str, tuple[str, str]]]:
    with RuleStore(url) as rules:
        v = rules.current("pre_auth")
    return v.version, {r.id: (r.status, r.author) for r in v.rules}


def test_rules_and_lists_page_in_chromium(
    store: Path,
    chromium: Browser,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{store}"
    models = tmp_path / "models"
    _bundle(models)
    monkeypatch.setenv("FRAUDSTREAM_DASHBOARD__USER_HEADER", "")  # the form, not a proxy
    settings = Settings(store={"url": url}, models_dir=models)
    proc, base = start_dashboard(settings, port=0, log_path=tmp_path / "dashboard.log")
    requested: list[str] = []
    try:
        page = chromium.new_page(viewport={"width": 1500, "height": 1900})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(base)
        _sign_in(page, "ana", PASSWORD)
        _open(page, TITLE)
        _analyst_rules(page, url)
        _analyst_list(page, url)
        _backtest(page, url)
        page.close()
        version = _rules(url)
        _viewer(chromium.new_page(), base)
        assert _rules(url) == version  # the viewer changed nothing
    finally:
        stop_dashboard(proc)
    assert len(requested) > 10
    outside = {u for u in requested if urlsplit(u).hostname not in ("127.0.0.1", "localhost")}
    assert {u for u in outside if not u.startswith(("data:", "blob:"))} == set()


def _form(page: Page, button: str) -> Locator:
    return page.locator('[data-testid="stForm"]').filter(
        has=page.get_by_role("button", name=button)
    )


def _choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _analyst_rules(page: Page, url: str) -> None:
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_contain_text("mules", timeout=WAIT_MS)
    expect(grid).to_contain_text("big")
    expect(page.get_by_text("Changes are saved as ana (analyst)")).to_be_visible()
    add = _form(page, "Add rule")
    # refused: an unknown field, shown with its position; nothing saved
    add.get_by_role("textbox", name="Id", exact=True).fill("bad")
    add.get_by_role("textbox", name="Condition").fill('type == "TRANSFER" and amout > 10_000')
    add.get_by_role("button", name="Add rule").click()
    error = page.locator('[data-testid="stAlert"]').filter(has_text="unknown field 'amout'")
    expect(error).to_contain_text("at column 24", timeout=WAIT_MS)
    caret = page.locator('[data-testid="stCode"]').filter(has_text="amout > 10_000")
    expect(caret).to_contain_text("^")
    assert _rules(url)[0] == 1
    # a valid rule: it appears, and the store holds it signed by the analyst
    add.get_by_role("textbox", name="Id", exact=True).fill("night_cash")
    add.get_by_role("textbox", name="Condition").fill('type == "CASH_OUT" and hour < 6')
    add.get_by_role("button", name="Add rule").click()
    expect(page.get_by_text("now version 2, by ana")).to_be_visible(timeout=WAIT_MS)
    expect(grid).to_contain_text("night_cash", timeout=WAIT_MS)
    version, rules = _rules(url)
    assert (version, rules["night_cash"]) == (2, ("draft", "ana"))
    # the shadow rule goes live, then is paused
    _choose(page, "Rule", "big")
    expect(page.get_by_text("Status: shadow")).to_be_visible(timeout=WAIT_MS)
    # while Streamlit reruns, the previous selection's button (disabled) can still be on the page
    page.get_by_role("button", name="Put live", disabled=False).click()
    expect(page.get_by_text("Rule moved to live (pre_auth big)")).to_be_visible(timeout=WAIT_MS)
    assert _rules(url)[1]["big"] == ("live", "cy")  # the author is who first wrote it
    page.get_by_role("button", name="Pause", disabled=False).click()
    expect(page.get_by_text("Rule moved to paused (pre_auth big)")).to_be_visible(timeout=WAIT_MS)
    version, rules = _rules(url)
    assert (version, rules["big"]) == (4, ("paused", "cy"))
    with RuleStore(url) as store:
        changes = store.history("pre_auth", limit=3)
    assert [(c.version, c.change, c.author) for c in changes] == [
        (4, "status", "ana"),
        (3, "status", "ana"),
        (2, "add", "ana"),
    ]


def _analyst_list(page: Page, url: str) -> None:
    page.get_by_role("tab", name="Lists").click()
    form = _form(page, "Add entries")
    expect(form).to_be_visible(timeout=WAIT_MS)
    form.get_by_label("Values to add, one per line").fill("M7")
    _choose(page, "Expires after", "7 days")
    form.get_by_label("Reason").fill("chargeback")
    form.get_by_role("button", name="Add entries").click()
    expect(page.get_by_text("1 value(s) added to mules")).to_be_visible(timeout=WAIT_MS)
    with RuleStore(url) as store:
        entry = next(e for e in store.entries("mules") if e.value == "M7")
    assert (entry.added_by, entry.reason) == ("ana", "chargeback")
    assert entry.expires_at_ms is not None
    # 7 days from when the analyst clicked (the store stamps its own time a moment later)
    assert 0 <= 7 * DAY_MS - (entry.expires_at_ms - entry.added_at_ms) < 5_000
    grid = page.locator('[data-testid="stDataFrame"]').nth(1)
    expect(grid).to_contain_text("M7", timeout=WAIT_MS)


def _backtest(page: Page, url: str) -> None:
    page.get_by_role("tab", name="Backtest").click()
    page.get_by_role("button", name="Run backtest").click()
    table = page.locator('[data-testid="stTable"]')
    expect(table).to_be_visible(timeout=WAIT_MS)
    with RuleStore(url) as store:
        mules = store.lists_snapshot().lists["mules"]
        ids = [r.id for r in store.current("pre_auth").rules]
    since = NEWEST_MS - 7 * DAY_MS  # the default: the last 7 days of stored transactions
    recent = [t for t in SEED if t.time_ms >= since]
    hits = [t for t in recent if t.counterparty in mules]
    labelled = [t for t in hits if t.label >= 0]
    row = table.locator("tr").filter(has_text="mules")
    cells = row.locator("th, td").all_inner_texts()
    header = table.locator("thead tr th").all_inner_texts()
    figures = dict(zip(header, cells, strict=True))
    assert figures["hits"] == f"{len(hits):,}"
    assert figures["precision"] == f"{sum(t.label for t in labelled) / len(labelled):.1%}"
    for column in ("hits/day", "recall", "overlap with model alerts", "cost delta"):
        assert figures[column], column
    body = table.locator("tbody tr").all_inner_texts()
    assert len(body) == len(ids)  # one row per rule of the set in force
    # a rule being edited: backtested as typed, from the edit form, nothing saved
    before = _rules(url)
    page.get_by_role("tab", name="Rules").click()
    _choose(page, "Rule", "mules")
    edit = _form(page, "Backtest these changes")
    edit.get_by_role("textbox", name="Condition").fill("amount > 6_500")
    edit.get_by_role("button", name="Backtest these changes").click()
    row = page.locator('[data-testid="stTable"] tr').filter(has_text="mules")
    expect(row).to_contain_text("draft", timeout=WAIT_MS)  # as written, not the stored rule
    cells = dict(zip(header, row.locator("th, td").all_inner_texts(), strict=True))
    assert cells["hits"] == f"{sum(t.amount > 6500 for t in recent):,}"
    assert _rules(url) == before


def _viewer(page: Page, base: str) -> None:
    page.goto(base)
    _sign_in(page, "vic", PASSWORD)
    _open(page, TITLE)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_contain_text(
        "mules", timeout=WAIT_MS
    )
    expect(
        page.get_by_text("read-only; changing rules and lists needs the analyst role")
    ).to_be_visible()
    for button in ("Add rule", "Save changes", "Put live", "Pause", "Remove rule"):
        assert page.get_by_role("button", name=button).count() == 0, button
    page.get_by_role("tab", name="Lists").click()
    expect(page.locator('[data-testid="stDataFrame"]').nth(1)).to_contain_text(
        "M7", timeout=WAIT_MS
    )
    for button in ("Add entries", "Remove entries", "Create list"):
        assert page.get_by_role("button", name=button).count() == 0, button
    page.close()
