"""Each dashboard page under Streamlit's AppTest against a small seeded SQLite store.

No broker runs here: the Kafka address is a closed port, so the lag reads "unknown" and a verdict
is stored but its label waits to be published (the browser test covers the broker path).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fraudstream.broker import free_port
from fraudstream.dashboard import APP, Database
from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._access import add_user, recent_audit
from fraudstream.features import feature_names
from fraudstream.model import promote
from fraudstream.sinks import open_store

from .test_dashboard_queries import seed_events, seed_known

_TIMEOUT_S = 60
PASSWORD = "correct horse battery"


def _png(path: Path) -> None:
    """A 2×2 grey PNG (a stand-in for a bundle's report plot)."""
    raw = b"".join(b"\x00" + b"\x80" * 6 for _ in range(2))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    seed_known(store)
    store.record_notification_failure("t1", "webhook", 5, "HTTP 503 from hook", "{}")  # type: ignore[attr-defined]
    store.close()
    seed_events(url)
    bundle = tmp_path / "models" / "20240101T000000Z-test"
    bundle.mkdir(parents=True)
    manifest = {
        "format": 1,
        "version": bundle.name,
        "mode": "pre_auth",
        "feature_names": list(feature_names("pre_auth")),
        "thresholds": {"review": 0.25, "block": 0.9},
        "metrics": {"lightgbm": {"average_precision": 0.61, "roc_auc": 0.93, "alerts": 12}},
    }
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    _png(bundle / "pr_curve.png")
    promote(tmp_path / "models", bundle.name)  # the Model page shows the bundle in service
    monkeypatch.setenv("FRAUDSTREAM_STORE__URL", url)
    monkeypatch.setenv("FRAUDSTREAM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield url
    st.cache_data.clear()
    st.cache_resource.clear()


def _page(page: str | None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=_TIMEOUT_S).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_live_page(store_url: str) -> None:
    at = _page(None)
    metrics = _metrics(at)
    assert metrics["Alerts"] == "12.0 /min"
    # the newest window: 3 of 8 transactions, 1,050 of 1,835 in amount
    assert metrics["Fraud share of transactions (count)"] == "37.50%"
    assert metrics["Fraud share of amount"] == "57.22%"
    assert metrics["Fraud amount (30 s, CU)"] == "1,050"
    assert metrics["Transactions (30 s)"] == "8"
    assert metrics["Model version"] == "v1"
    assert metrics["Consumer lag"] == "unknown"
    assert any("unreachable" in c.value for c in at.caption)
    assert any("1 alert notification(s) failed" in e.value for e in at.error)


def _account(url: str, name: str, role: str) -> None:
    db = Database(url)
    try:
        add_user(db, name, role, PASSWORD, actor="test")
    finally:
        db.close()


def _signed_in(name: str, password: str = PASSWORD) -> AppTest:
    """A session that signed in on the form (the only page while accounts exist)."""
    at = AppTest.from_file(str(APP), default_timeout=_TIMEOUT_S).run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert not [b for b in at.button if b.key in ("confirm", "dismiss")]
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_alerts_page_stores_a_verdict_even_when_the_broker_is_down(store_url: str) -> None:
    _account(store_url, "ana", "analyst")
    at = _signed_in("ana")
    assert any("Signed in as **ana** (analyst)" in c.value for c in at.sidebar.caption)
    at.switch_page("views/alerts.py").run()
    metrics = _metrics(at)
    assert metrics["Open alerts"] == "5"
    assert metrics["Score"] == "0.950"  # riskiest first: t1
    assert at.selectbox(key="chosen_alert").value == "t1"
    assert at.selectbox(key="chosen_alert").options[1].startswith("0.700 · block · A → M2")
    # reason codes: readable name, value with its unit, direction
    texts = [t.value for t in at.text]
    assert "Amount: 500.00 CU (raises risk, +1.50 log-odds)" in texts
    assert "Hour of day (UTC): 03:00–03:59 (raises risk, +0.50 log-odds)" in texts
    assert not [t for t in at.text_input if t.key == "analyst"]  # nothing to type: the account
    assert any("Acting as **ana** (analyst)" in c.value for c in at.caption)
    at.button(key="confirm").click().run()
    assert not at.exception
    assert any("Verdict stored, label NOT published" in e.value for e in at.error)
    alert = q.get_alert(Database(store_url), "t1")
    assert alert is not None
    assert (alert.status, alert.analyst) == ("confirmed_fraud", "ana")
    assert at.session_state["pending_labels"] == ["t1"]
    assert _metrics(at)["Confirmed fraud"] == "1"


def test_without_accounts_every_page_is_read_only(store_url: str) -> None:
    at = _page(None)
    assert any("fraudstream users add admin --role admin" in w.value for w in at.sidebar.warning)
    at.switch_page("views/alerts.py").run()
    assert _metrics(at)["Open alerts"] == "5"
    assert not [b for b in at.button if b.key in ("confirm", "dismiss", "republish_all")]
    assert any("Read-only" in i.value for i in at.info)


def test_a_wrong_password_shows_the_form_again_and_a_viewer_gives_no_verdict(
    store_url: str,
) -> None:
    _account(store_url, "vic", "viewer")
    at = _signed_in("vic", "not-the-password")
    assert any("Wrong user name or password" in e.value for e in at.error)
    assert [t.value for t in at.title] == ["Sign in"]
    at = _signed_in("vic")
    next(b for b in at.sidebar.button if b.key == "sign_out").click().run()
    assert [t.value for t in at.title] == ["Sign in"]
    at = _signed_in("vic")
    at.switch_page("views/alerts.py").run()
    assert at.selectbox(key="chosen_alert").value == "t1"
    assert not [b for b in at.button if b.key in ("confirm", "dismiss", "republish_all")]
    assert any("verdicts need the analyst role" in i.value for i in at.info)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/audit.py")  # not among a viewer's pages
    actions = [e.action for e in recent_audit(Database(store_url), 10, "vic")]
    assert actions == ["sign-in", "sign-out", "sign-in", "sign-in failed"]


def test_an_admin_reads_the_audit_log(store_url: str) -> None:
    _account(store_url, "root", "admin")
    at = _signed_in("root")
    at.switch_page("views/audit.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Audit log"]
    log, accounts = (d.value for d in at.dataframe)
    assert log[["user", "action", "target"]].values.tolist()[:2] == [
        ["root", "sign-in", ""],
        ["test", "user added", "root"],
    ]
    assert accounts[["user", "role", "signs in with"]].values.tolist() == [
        ["root", "admin", "password"]
    ]


def test_alerts_page_searches_by_account_or_transaction(store_url: str) -> None:
    at = _page("alerts")
    at.selectbox(key="status").select("any").run()
    at.text_input(key="search").input("M1").run()  # B -> M1 (t3), D -> M1 (t7)
    assert at.selectbox(key="chosen_alert").options == [
        o for o in at.selectbox(key="chosen_alert").options if "→ M1" in o
    ]
    assert len(at.selectbox(key="chosen_alert").options) == 2
    assert at.number_input(key="queue_page").label == "Page (of 1)"
    at.text_input(key="search").input("t6").run()
    assert at.selectbox(key="chosen_alert").value == "t6"
    assert len(at.selectbox(key="chosen_alert").options) == 1
    at.text_input(key="search").input("nobody").run()
    assert any("No alerts match" in i.value for i in at.info)


def test_alerts_page_filters_and_pages(store_url: str) -> None:
    at = _page("alerts")
    at.selectbox(key="decision").select("block").run()
    ids = [o for o in at.selectbox(key="chosen_alert").options]
    assert len(ids) == 2
    at.selectbox(key="status").select("false_positive").run()
    assert any("No alerts match" in i.value for i in at.info)


def test_trends_page(store_url: str) -> None:
    at = _page("trends")
    metrics = _metrics(at)
    assert metrics["Alerts in range"] == "5"
    assert metrics["Blocked in range"] == "2"
    # (3 + 3) / (7 + 8) window rows
    assert metrics["Fraud share of transactions (count)"] == "40.00%"
    frames = [d.value for d in at.dataframe]
    destinations = frames[0]
    assert destinations["counterparty"].tolist()[:2] == ["M2", "M1"]
    assert destinations["labelled_frauds"].tolist()[:1] == [2]
    at.radio(key="range").set_value("last hour").run()
    assert not at.exception


def test_model_page_and_what_if(store_url: str) -> None:
    at = _page("model")
    metrics = _metrics(at)
    assert metrics["Version"] == "20240101T000000Z\\-test"  # Markdown source: "-" escaped
    assert metrics["Review threshold"] == "0.2500"
    assert metrics["Precision (labels)"] == "50.0%"
    assert metrics["Recall (labels)"] == "66.7%"
    # what-if on the 7 labelled rows at review 0.25 / block 0.9: alerts t1 t2 t3 t6 -> 2 frauds
    assert metrics["Precision"] == "50.0%"
    assert metrics["Recall"] == "66.7%"
    at.number_input(key="review_threshold").set_value(0.5).run()
    metrics = _metrics(at)
    assert metrics["Precision"] == "50.0%"  # t1 (fraud), t6 (good)
    assert metrics["Recall"] == "33.3%"
    images = at.get("image")
    assert len(images) == 1 and images[0].proto.imgs[0].caption == "pr curve"
    (events,) = [f.value for f in at.dataframe if "step" in f.value.columns]
    assert events["step"].tolist() == ["promoted", "evaluated", "trained"]
    assert events["why / figures"].tolist() == [
        "AP ahead by +0.25",
        "AP 0.5000 vs 0.2500 in service",
        "",
    ]
