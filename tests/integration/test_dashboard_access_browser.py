"""Dashboard access in a real headless Chromium (Debian's, launched as the page test launches it).

One ``streamlit run`` over a small store with three accounts (viewer, analyst, admin) and the
session's real broker; each part is a fresh browser session. Without signing in only the sign-in
form exists, whatever the URL; a wrong password is refused; a viewer reads the queue but has no
verdict control; an analyst's verdict is stored and published signed with the account's name;
the admin's audit log shows it. The labels topic ends up holding exactly the analyst's label,
and the store exactly the analyst's verdict.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.config import Settings
from fraudstream.dashboard import Database
from fraudstream.dashboard._access import add_user
from fraudstream.schema import decode_label
from fraudstream.sinks import open_store

from ..unit.test_dashboard_queries import seed_known
from ._kafka_util import read_topic
from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

WAIT_MS = 60_000
PASSWORD = "correct horse battery"
ACCOUNTS = {"vic": "viewer", "ana": "analyst", "root": "admin"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """``seed_known``'s alerts (t1, score 0.95, is the riskiest open one) and three accounts."""
    path = tmp_path / "store.db"
    sink = open_store(f"sqlite:///{path}")
    sink.open()
    seed_known(sink)
    sink.close()
    db = Database(f"sqlite:///{path}")
    try:
        for name, role in ACCOUNTS.items():
            add_user(db, name, role, PASSWORD, actor="test")
    finally:
        db.close()
    return path


@pytest.fixture
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (`make browser`)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def _sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _open(page: Page, title: str) -> None:
    """Go to a page through the sidebar (a reload would start a new, signed-out session)."""
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=WAIT_MS)


def test_sign_in_roles_and_audit_in_chromium(
    store: Path,
    chromium: Browser,
    bootstrap: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels_topic = f"fraud-labels-{unique}"
    monkeypatch.setenv("FRAUDSTREAM_TOPICS__LABELS", labels_topic)
    monkeypatch.setenv("FRAUDSTREAM_DASHBOARD__USER_HEADER", "")  # the form, not a proxy
    settings = Settings(store={"url": f"sqlite:///{store}"})
    proc, base = start_dashboard(
        settings, port=0, bootstrap=bootstrap, log_path=tmp_path / "dashboard.log"
    )
    try:
        _nobody_signed_in(chromium.new_page(), base)
        _viewer(chromium.new_page(), base)
        _analyst(chromium.new_page(), base, store)
        _admin(chromium.new_page(), base)
    finally:
        stop_dashboard(proc)
    # nobody but the analyst wrote a verdict or a label
    assert _rows(
        store, "SELECT alert_id, status, analyst FROM fraud_alerts WHERE status <> 'open'"
    ) == [("t1", "confirmed_fraud", "ana")]
    messages = read_topic({"bootstrap.servers": bootstrap}, labels_topic, expect=1)
    assert [(m.key(), decode_label(m.value()).analyst) for m in messages] == [(b"A", "ana")]


def _nobody_signed_in(page: Page, base: str) -> None:
    for path in ("/alerts", "/audit", ""):  # a page name in the URL: "page not found"
        page.goto(base + path)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_label("User name")).to_be_visible()
        assert page.get_by_role("button", name="Confirm fraud").count() == 0
        assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0
    _sign_in(page, "ana", "not the password")
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible(timeout=WAIT_MS)
    assert page.get_by_role("button", name="Confirm fraud").count() == 0
    page.close()


def _viewer(page: Page, base: str) -> None:
    page.goto(base)
    _sign_in(page, "vic")
    expect(page.get_by_text("Signed in as vic (viewer)")).to_be_visible(timeout=WAIT_MS)
    assert page.get_by_role("link", name="Audit log").count() == 0
    _open(page, "Alerts")
    expect(page.get_by_text("Alert t1")).to_be_visible(timeout=WAIT_MS)
    expect(
        page.get_by_text("Signed in as vic (viewer): verdicts need the analyst role.")
    ).to_be_visible()
    assert page.get_by_role("button", name="Confirm fraud").count() == 0
    assert page.get_by_role("button", name="False positive").count() == 0
    page.close()


def _analyst(page: Page, base: str, store: Path) -> None:
    page.goto(base)
    _sign_in(page, "ana")
    _open(page, "Alerts")
    expect(page.get_by_text("Alert t1")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Acting as ana (analyst)")).to_be_visible()
    page.get_by_role("button", name="Confirm fraud").click()
    expect(page.get_by_text("label published to")).to_be_visible(timeout=WAIT_MS)
    assert _rows(store, "SELECT status, analyst FROM fraud_alerts WHERE alert_id = 't1'") == [
        ("confirmed_fraud", "ana")
    ]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    page.close()


def _admin(page: Page, base: str) -> None:
    page.goto(base)
    _sign_in(page, "root")
    _open(page, "Audit log")
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_contain_text("verdict stored", timeout=WAIT_MS)
    expect(grid).to_contain_text("ana")
    expect(grid).to_contain_text("sign-in failed")
    page.close()
