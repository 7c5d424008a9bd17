"""The dashboard end to end in a real headless Chromium (Debian's, never a downloaded browser).

``streamlit run`` serves the app on a free port over a store filled by ``scripts/seed_store.py``
(plus one alert on a crafted account name) and the session's real broker; Playwright drives
``/usr/bin/chromium`` in the New York time zone, sending the reverse proxy's user header. Each
page's key numbers are checked against the store, and time labels against UTC; on the Alerts page
the reason codes read with their values, the crafted name renders as inert text, the riskiest
alert is confirmed by the header's user, an analyst in the accounts table (status, audit entry and
label read back from the store and the labels topic), and a search's CSV export holds exactly the
store's matching alerts. No request may leave 127.0.0.1. With
``FRAUDSTREAM_DASHBOARD_SCREENSHOTS=<dir>`` each page is also saved as
``<dir>/dashboard_<page>.png`` (``scripts/dashboard_screenshots.py``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.config import Settings
from fraudstream.dashboard import Database
from fraudstream.dashboard._access import add_user
from fraudstream.features import feature_names
from fraudstream.model import latest_bundle
from fraudstream.schema import KINDS, ScoredBatch, TxBatch
from fraudstream.sinks import open_store

from ._kafka_util import read_topic

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000
#: An account name a hostile producer could send: a right-to-left override (the amount after it
#: would read backwards), a remote image, a link and a heading.
#: At most 64 characters, as the detector accepts ids (and the labels topic its accounts).
HOSTILE = "C\u202e62.725,74 ![x](http://evil.ex/x.png) [a](http://evil.ex) # Big"
HOSTILE_SHOWN = "C[U+202E]62.725,74 ![x](http://evil.ex/x.png) [a](http://evil.ex)"
HOSTILE_ID = "hostile-1"
USER_HEADER = "X-Forwarded-User"
ANALYST = "e2e-analyst"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A SQLite store seeded with 20,000 transactions at 20 tx/s (the last ~17 minutes).

    ``FRAUDSTREAM_DASHBOARD_SEED=rows,rate`` seeds another size (the screenshots use more).
    """
    path = tmp_path / "store.db"
    rows, rate = os.environ.get("FRAUDSTREAM_DASHBOARD_SEED", "20000,20").split(",")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "seed_store.py"),
            f"--url=sqlite:///{path}",
            f"--rows={rows}",
            f"--rate={rate}",
            f"--batch={max(int(float(rate)) * 2, 10)}",  # a detector batch every ~2 s
            "--accounts=2000",
            "--fraud-rate=0.01",
            "--verdict-share=0.2",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    _add_hostile_alert(path)
    db = Database(f"sqlite:///{path}")
    try:  # the proxy's user is an analyst: its role comes from the accounts table
        add_user(db, ANALYST, "analyst", None, actor="test")
    finally:
        db.close()
    return path


def _add_hostile_alert(path: Path) -> None:
    """The riskiest alert: a crafted account name, reason codes with known values."""
    (newest,) = _one(path, "SELECT max(event_time_ms) FROM transactions_enriched")
    names = feature_names("pre_auth")
    tx = TxBatch(
        tx_id=[HOSTILE_ID],
        event_time_ms=np.array([newest], np.int64),
        account=[HOSTILE],
        counterparty=["C00000001"],
        kind=np.array([KINDS.index("TRANSFER")], np.int8),
        amount=np.array([9870.0]),
        old_balance_orig=np.full(1, np.nan),
        new_balance_orig=np.full(1, np.nan),
        old_balance_dest=np.full(1, np.nan),
        new_balance_dest=np.full(1, np.nan),
        label=np.array([1], np.int8),
        step=np.zeros(1, np.int64),
        flagged=np.zeros(1, np.int8),
    )
    reasons = [("amount_vs_mean_by_account", 12.34, 2.0), ("kind_payment", 0.0, 0.8)]
    store = open_store(f"sqlite:///{path}")
    store.open()
    try:
        store.write(
            ScoredBatch(
                tx=tx,
                feature_names=names,
                features=np.zeros((1, len(names)), np.float32),
                score=np.array([0.9999]),
                decision=np.array([2], np.int8),
                reasons=[reasons],
                model_version="seed-v1",
                partition=np.zeros(1, np.int32),
                offset=np.zeros(1, np.int64),
                processed_at_ms=int(newest) + 100,
            )
        )
        store.flush()
    finally:
        store.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, i.e. "
            "`apt-get install -y chromium`); the dashboard's browser test never downloads one"
        )
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1900},
            timezone_id="America/New_York",  # time labels must still read UTC
            extra_http_headers={USER_HEADER: ANALYST},  # as a signing-in reverse proxy would
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


def _one(db: Path, sql: str) -> tuple[object, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def _metric(page: Page, label: str) -> object:
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).first


def _shoot(page: Page, name: str) -> None:
    target = os.environ.get("FRAUDSTREAM_DASHBOARD_SCREENSHOTS")
    if not target:
        return
    expect(page.locator(".vega-embed").first).to_be_visible(timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # let the charts finish drawing
    Path(target).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(target) / f"dashboard_{name}.png"), full_page=True)


def test_dashboard_pages_and_a_verdict_in_chromium(
    store: Path,
    browser: BrowserContext,
    bootstrap: str,
    models_dir: Path,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels_topic = f"fraud-labels-{unique}"
    monkeypatch.setenv("FRAUDSTREAM_TOPICS__LABELS", labels_topic)
    monkeypatch.setenv("FRAUDSTREAM_DETECT__GROUP_ID", f"detector-{unique}")
    monkeypatch.setenv("FRAUDSTREAM_DASHBOARD__USER_HEADER", USER_HEADER)
    settings = Settings(store={"url": f"sqlite:///{store}"}, models_dir=models_dir)
    proc, base = start_dashboard(
        settings, port=0, bootstrap=bootstrap, log_path=tmp_path / "dashboard.log"
    )
    requested: list[str] = []
    try:
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        _live(page, base, store)
        _trends(page, base, store)
        _model(page, base, store, models_dir)
        _alerts(page, base, store, bootstrap, labels_topic)
        _search_and_export(page, store)
    finally:
        stop_dashboard(proc)
    assert len(requested) > 20
    outside = {u for u in requested if urlsplit(u).hostname not in ("127.0.0.1", "localhost")}
    assert {u for u in outside if not u.startswith(("data:", "blob:"))} == set()


def _utc_minute(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).replace(second=0, microsecond=0)


def _live(page: Page, base: str, store: Path) -> None:
    page.goto(base)
    (tx,) = _one(store, "SELECT transactions FROM window_stats ORDER BY window_end_ms DESC LIMIT 1")
    expect(_metric(page, "Transactions (30 s)")).to_contain_text(f"{tx:,}", timeout=WAIT_MS)
    expect(_metric(page, "Fraud share of transactions (count)")).to_be_visible()
    expect(_metric(page, "Fraud share of amount")).to_be_visible()
    _time_labels_are_utc(page, store)
    expect(_metric(page, "Model version")).to_contain_text("seed-v1", timeout=WAIT_MS)
    # the detector group never committed: the lag is everything on the topic (here: no topic)
    expect(_metric(page, "Consumer lag")).to_be_visible(timeout=WAIT_MS)
    (failures,) = _one(store, "SELECT count(*) FROM notification_failures")
    expect(page.get_by_text(f"{failures:,} alert notification(s) failed")).to_be_visible()
    _shoot(page, "live")


def _time_labels_are_utc(page: Page, store: Path) -> None:
    """The throughput chart's time labels: 24-hour UTC clock times of the last 5 minutes."""
    chart = page.locator(".vega-embed").first
    expect(chart.locator("text").first).to_be_attached(timeout=WAIT_MS)
    (end_ms,) = _one(store, "SELECT max(window_end_ms) FROM window_stats")
    first, last = _utc_minute(int(end_ms) - 6 * 60_000), _utc_minute(int(end_ms) + 60_000)
    labels = [
        t
        for t in chart.locator("text").all_text_contents()
        if re.fullmatch(r"\d\d:\d\d(:\d\d)?", t)
    ]
    assert len(labels) >= 3, labels
    for label in labels:
        hour, minute = int(label[:2]), int(label[3:5])
        at = first.replace(hour=hour, minute=minute)
        if at < first:
            at += dt.timedelta(days=1)
        assert first <= at <= last, (label, first, last)  # local New York time is 5 h off


def _trends(page: Page, base: str, store: Path) -> None:
    page.goto(f"{base}/trends")
    (alerts,) = _one(store, "SELECT count(*) FROM fraud_alerts")
    (blocked,) = _one(store, "SELECT count(*) FROM fraud_alerts WHERE decision = 'block'")
    expect(_metric(page, "Alerts in range")).to_contain_text(f"{alerts:,}", timeout=WAIT_MS)
    expect(_metric(page, "Blocked in range")).to_contain_text(f"{blocked:,}", timeout=WAIT_MS)
    _shoot(page, "trends")


def _model(page: Page, base: str, store: Path, models_dir: Path) -> None:
    page.goto(f"{base}/model")
    bundle = latest_bundle(models_dir)
    assert bundle is not None
    expect(_metric(page, "Version")).to_contain_text(bundle.name, timeout=WAIT_MS)
    (alerted,) = _one(
        store, "SELECT count(*) FROM transactions_enriched WHERE decision IN ('review', 'block')"
    )
    expect(_metric(page, "Alerts")).to_contain_text(f"{alerted:,}", timeout=WAIT_MS)
    expect(_metric(page, "Expected cost")).to_be_visible(timeout=WAIT_MS)
    # feedback from labels: every seeded alert is under an hour old; the seed's verdicts count
    confirmed, rejected = _one(
        store,
        "SELECT sum(status = 'confirmed_fraud'), sum(status = 'false_positive') FROM fraud_alerts",
    )
    row = page.locator('[data-testid="stTable"] tr').filter(has_text="< 1 h")
    expect(row).to_be_visible(timeout=WAIT_MS)
    cells = row.locator("th, td").all_inner_texts()
    assert cells[:4] == ["< 1 h", f"{alerted:,}", f"{confirmed:,}", f"{rejected:,}"]
    _shoot(page, "model")


def _alerts(page: Page, base: str, store: Path, bootstrap: str, labels_topic: str) -> None:
    page.goto(f"{base}/alerts")
    (open_alerts,) = _one(store, "SELECT count(*) FROM fraud_alerts WHERE status = 'open'")
    alert_id, account, score = _one(
        store,
        "SELECT alert_id, account, score FROM fraud_alerts WHERE status = 'open' "
        "ORDER BY score DESC, alert_id LIMIT 1",
    )
    assert (alert_id, account) == (HOSTILE_ID, HOSTILE)
    expect(_metric(page, "Open alerts")).to_contain_text(f"{open_alerts:,}", timeout=WAIT_MS)
    expect(_metric(page, "Score")).to_contain_text(f"{score:.3f}", timeout=WAIT_MS)
    expect(page.get_by_text(f"Alert {alert_id}")).to_be_visible()
    # reason codes: readable name, value in its unit, direction
    expect(
        page.get_by_text("Amount relative to the account's mean: 12.3× (raises risk, +2.00")
    ).to_be_visible()
    expect(page.get_by_text("Type is PAYMENT: no (raises risk, +0.80 log-odds)")).to_be_visible()
    # the crafted name is shown as typed, inert: no image, no link, no heading, no reordering
    shown = page.locator('[data-testid="stText"]').filter(has_text=HOSTILE_SHOWN)
    expect(shown).to_be_visible()
    assert page.locator("img[src*='evil'], a[href*='evil']").count() == 0
    assert page.get_by_role("heading", name="Big").count() == 0
    # the analyst is the proxy's user: nothing to type
    expect(page.get_by_text(f"Acting as {ANALYST} (analyst)")).to_be_visible()
    assert page.get_by_label("Analyst").count() == 0
    _shoot(page, "alerts")
    page.get_by_role("button", name="Confirm fraud").click()
    expect(page.get_by_text(f"label published to {labels_topic}")).to_be_visible(timeout=WAIT_MS)
    status, who = _one(
        store, f"SELECT status, analyst FROM fraud_alerts WHERE alert_id = '{alert_id}'"
    )
    assert (status, who) == ("confirmed_fraud", ANALYST)
    assert _one(
        store, "SELECT actor, target FROM dashboard_audit WHERE action = 'verdict stored'"
    ) == (ANALYST, alert_id)
    messages = read_topic({"bootstrap.servers": bootstrap}, labels_topic, expect=1)
    assert len(messages) == 1
    # read as JSON: since issue 17, decode_label refuses an account with a control character
    # (the detector refuses such a transaction too; this alert was written to the store directly)
    label = json.loads(messages[0].value())
    assert (label["alert_id"], label["account"], label["label"], label["analyst"]) == (
        alert_id,
        account,
        1,
        ANALYST,
    )
    assert messages[0].key() == str(account).encode()
    expect(_metric(page, "Open alerts")).to_contain_text(f"{open_alerts - 1:,}")


def _search_and_export(page: Page, store: Path) -> None:
    """Search an account with several alerts; the CSV holds exactly the store's matching ones."""
    (account,) = _one(
        store,
        "SELECT account FROM fraud_alerts WHERE status = 'open' GROUP BY account "
        "ORDER BY count(*) DESC, account LIMIT 1",
    )
    with sqlite3.connect(store) as conn:
        wanted = [
            r[0]
            for r in conn.execute(
                "SELECT alert_id FROM fraud_alerts WHERE status = 'open' AND "
                "(account = ? OR counterparty = ? OR alert_id = ? OR tx_id = ?) "
                "ORDER BY score DESC, alert_id",
                (account,) * 4,
            )
        ]
    assert len(wanted) >= 2
    search = page.get_by_role("textbox", name="Search: account or transaction id")
    search.fill(str(account))
    search.press("Enter")
    button = page.get_by_role("button", name=f"Export these {len(wanted):,} alerts (CSV)")
    expect(button).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text(f"Alert {wanted[0]}")).to_be_visible(timeout=WAIT_MS)
    with page.expect_download(timeout=WAIT_MS) as download:
        button.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["alert_id"] for r in rows] == wanted
    assert all(account in (r["account"], r["counterparty"]) for r in rows)
    assert all(r["currency"] == "CU" and r["reasons"] for r in rows)
