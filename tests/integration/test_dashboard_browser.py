"""The dashboard end to end in a real headless Chromium (Debian's, never a downloaded browser).

``streamlit run`` serves the app on a free port over a store filled by ``scripts/seed_store.py``
and the session's real broker; Playwright drives ``/usr/bin/chromium``. Each page's key numbers
are checked against the store; an alert is confirmed in the browser and its status and label are
read back from the store and the labels topic. With ``FRAUDSTREAM_DASHBOARD_SCREENSHOTS=<dir>``
each page is also saved as ``<dir>/dashboard_<page>.png`` (``scripts/dashboard_screenshots.py``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.config import Settings
from fraudstream.model import latest_bundle
from fraudstream.schema import decode_label

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
    return path


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
    settings = Settings(store={"url": f"sqlite:///{store}"}, models_dir=models_dir)
    proc, base = start_dashboard(
        settings, port=0, bootstrap=bootstrap, log_path=tmp_path / "dashboard.log"
    )
    try:
        page = browser.new_page()
        _live(page, base, store)
        _trends(page, base, store)
        _model(page, base, store, models_dir)
        _alerts(page, base, store, bootstrap, labels_topic)
    finally:
        stop_dashboard(proc)


def _live(page: Page, base: str, store: Path) -> None:
    page.goto(base)
    (tx,) = _one(store, "SELECT transactions FROM window_stats ORDER BY window_end_ms DESC LIMIT 1")
    expect(_metric(page, "Transactions (30 s)")).to_contain_text(f"{tx:,}", timeout=WAIT_MS)
    expect(_metric(page, "Model version")).to_contain_text("seed-v1", timeout=WAIT_MS)
    # the detector group never committed: the lag is everything on the topic (here: no topic)
    expect(_metric(page, "Consumer lag")).to_be_visible(timeout=WAIT_MS)
    (failures,) = _one(store, "SELECT count(*) FROM notification_failures")
    expect(page.get_by_text(f"{failures:,} alert notification(s) failed")).to_be_visible()
    _shoot(page, "live")


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
    _shoot(page, "model")


def _alerts(page: Page, base: str, store: Path, bootstrap: str, labels_topic: str) -> None:
    page.goto(f"{base}/alerts")
    (open_alerts,) = _one(store, "SELECT count(*) FROM fraud_alerts WHERE status = 'open'")
    alert_id, account, score = _one(
        store,
        "SELECT alert_id, account, score FROM fraud_alerts WHERE status = 'open' "
        "ORDER BY score DESC, alert_id LIMIT 1",
    )
    expect(_metric(page, "Open alerts")).to_contain_text(f"{open_alerts:,}", timeout=WAIT_MS)
    expect(_metric(page, "Score")).to_contain_text(f"{score:.3f}", timeout=WAIT_MS)
    expect(page.get_by_text(f"Alert {alert_id}")).to_be_visible()
    _shoot(page, "alerts")
    analyst = page.get_by_label("Analyst")
    analyst.fill("e2e-analyst")
    analyst.press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Confirm fraud").click()
    expect(page.get_by_text(f"label published to {labels_topic}")).to_be_visible(timeout=WAIT_MS)
    status, who = _one(
        store, f"SELECT status, analyst FROM fraud_alerts WHERE alert_id = '{alert_id}'"
    )
    assert (status, who) == ("confirmed_fraud", "e2e-analyst")
    messages = read_topic({"bootstrap.servers": bootstrap}, labels_topic, expect=1)
    assert len(messages) == 1
    label = decode_label(messages[0].value())
    assert (label.alert_id, label.account, label.label, label.analyst) == (
        alert_id,
        account,
        1,
        "e2e-analyst",
    )
    assert messages[0].key() == str(account).encode()
    expect(_metric(page, "Open alerts")).to_contain_text(f"{open_alerts - 1:,}")
