"""The dashboard's queries against a small store with known content (SQLite here; PostgreSQL in
``tests/integration/test_dashboard_store.py`` runs the same checks)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from fraudstream.dashboard import Database
from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._access import User, add_user, recent_audit
from fraudstream.dashboard._export import queue_csv
from fraudstream.dashboard._verdicts import store_verdict
from fraudstream.errors import StoreError
from fraudstream.features import feature_names
from fraudstream.schema import ScoredBatch, TxBatch, WindowStats
from fraudstream.sinks import Store, _sqlite, open_store
from fraudstream.sinks._model_events import record_model_event
from fraudstream.sinks._sqlconn import SqlConnection

T0 = 1_700_000_000_000
NAMES = feature_names("pre_auth")
#: (account, counterparty, kind, amount, label, score, decision) per transaction, 1 s apart.
ROWS = [
    ("A", "M1", 0, 10.0, 0, 0.01, 0),
    ("A", "M2", 1, 500.0, 1, 0.95, 2),
    ("B", "M2", 2, 300.0, 1, 0.40, 1),
    ("B", "M1", 0, 20.0, 0, 0.30, 1),
    ("C", "M3", 2, 250.0, 1, 0.02, 0),
    ("C", "M2", 3, 40.0, 0, 0.05, 0),
    ("A", "M2", 1, 700.0, 0, 0.70, 2),
    ("D", "M1", 0, 15.0, -1, 0.20, 1),
]


def known_batch(index: Sequence[int] = range(len(ROWS))) -> ScoredBatch:
    """The transactions ``ROWS[i]`` for ``i`` in ``index`` (``tx_id`` ``t{i}``, 1 s apart)."""
    n = len(index)
    acc, cp, kind, amount, label, score, decision = zip(*(ROWS[i] for i in index), strict=True)
    feats = np.arange(n * len(NAMES), dtype=np.float32).reshape(n, len(NAMES))
    reasons = [
        [("amount", float(amount[i]), 1.5), ("hour_of_day", 3.0, 0.5)] if decision[i] else []
        for i in range(n)
    ]
    tx = TxBatch(
        tx_id=[f"t{i}" for i in index],
        event_time_ms=np.array([T0 + i * 1000 for i in index], np.int64),
        account=list(acc),
        counterparty=list(cp),
        kind=np.array(kind, np.int8),
        amount=np.array(amount, np.float64),
        old_balance_orig=np.full(n, np.nan),
        new_balance_orig=np.full(n, np.nan),
        old_balance_dest=np.full(n, np.nan),
        new_balance_dest=np.full(n, np.nan),
        label=np.array(label, np.int8),
        step=np.zeros(n, np.int64),
        flagged=np.zeros(n, np.int8),
    )
    return ScoredBatch(
        tx=tx,
        feature_names=NAMES,
        features=feats,
        score=np.array(score, np.float64),
        decision=np.array(decision, np.int8),
        reasons=reasons,
        model_version="v1",
        partition=np.zeros(n, np.int32),
        offset=np.array(index, dtype=np.int64),
        processed_at_ms=T0 + 60_000,
    )


def seed_known(store: Store) -> None:
    """Write ``ROWS`` (one batch), two window rows and a model version."""
    store.write(known_batch())
    store.write_window_stats(
        [
            WindowStats(T0 + 7_000, 30_000, 7, 3, 5, 1820.0, 1050.0),
            WindowStats(T0 + 8_000, 30_000, 8, 3, 6, 1835.0, 1050.0),
        ]
    )
    store.record_model_version("v1", '{"roc_auc": 0.9}')
    store.flush()


def seed_events(url: str, schema: str | None = None) -> None:
    """Three retraining steps of a challenger ``v2`` against ``v1``, one second apart."""
    db = SqlConnection(url, schema=schema)
    db.open()
    try:
        ap = {"challenger": {"average_precision": 0.5}, "champion": {"average_precision": 0.25}}
        for i, (event, detail) in enumerate(
            [("trained", {}), ("evaluated", ap), ("promoted", {"reason": "AP ahead by +0.25"})]
        ):
            record_model_event(db, "v2", event, champion="v1", detail=detail, at_ms=T0 + i * 1000)
    finally:
        db.close()


def seeded(tmp_path: Path) -> Iterator[Database]:
    """A SQLite store in ``tmp_path`` holding ``seed_known``'s content, closed at the end."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    seed_known(store)
    store.close()
    seed_events(url)
    database = Database(url)
    yield database
    database.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from seeded(tmp_path)


def _ids(alerts: list[q.AlertRow]) -> list[str]:
    return [a.alert_id for a in alerts]


def check_search_and_export(db: Database) -> None:
    """Search by account (sender or recipient) or transaction id; the CSV of the same filters."""
    assert _ids(q.alert_queue(db, "open", None, "score", 9, 0, "A")) == ["t1", "t6"]
    assert _ids(q.alert_queue(db, None, None, "oldest", 9, 0, "M1")) == ["t3", "t7"]
    assert _ids(q.alert_queue(db, None, None, "score", 9, 0, " t6 ")) == ["t6"]
    assert _ids(q.alert_queue(db, None, "review", "score", 9, 0, "M2")) == ["t2"]
    assert q.alert_queue(db, None, None, "score", 9, 0, "t0") == []  # allowed: no alert
    assert q.count_alerts(db, "open", "review", None) == 3
    assert q.count_alerts(db, None, None, "M2") == 3
    assert q.count_alerts(db, "false_positive", None, None) == 0
    text = queue_csv(db, status=None, decision="block", order="score", search=None, currency="EUR")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["alert_id"] for r in rows] == ["t1", "t6"]
    assert (rows[0]["account"], rows[0]["counterparty"], rows[0]["amount"]) == ("A", "M2", "500.0")
    assert (rows[0]["currency"], rows[0]["status"], rows[0]["event_time_utc"]) == (
        "EUR",
        "open",
        "2023-11-14 22:13:21",
    )
    assert rows[0]["reasons"] == (
        "Amount: 500.00 EUR (raises risk, +1.50 log-odds); "
        "Hour of day (UTC): 03:00–03:59 (raises risk, +0.50 log-odds)"
    )
    searched = queue_csv(db, status=None, decision=None, order="oldest", search="B", currency="")
    assert [r["alert_id"] for r in csv.DictReader(io.StringIO(searched))] == ["t2", "t3"]


def check_queries(db: Database) -> None:
    """Every query against ``seed_known``'s content; shared by the SQLite and PostgreSQL tests."""
    live = q.live_summary(db)
    assert live is not None
    assert (live.window_end_ms, live.transactions, live.alerts) == (T0 + 8_000, 8, 6)
    assert live.tx_per_s == pytest.approx(8 / 30)
    assert q.window_series(db, T0 + 7_500)["transactions"].tolist() == [8]
    per_minute = q.alerts_by_minute(db, 0)
    assert dict(zip(per_minute["decision"], per_minute["alerts"], strict=True)) == {
        "review": 3,
        "block": 2,
    }
    assert q.alerts_since(db, 0) == {"review": 3, "block": 2}
    assert q.alerts_since(db, T0 + 60_001) == {}
    assert q.latest_model_version(db) is not None
    assert q.alert_counts(db) == {"open": 5, "confirmed_fraud": 0, "false_positive": 0}
    queue = q.alert_queue(db, "open", None, "score", 3, 0)
    assert [a.alert_id for a in queue] == ["t1", "t6", "t2"]
    assert queue[0].reasons[0] == {"feature": "amount", "value": 500.0, "contribution": 1.5}
    assert [a.alert_id for a in q.alert_queue(db, "open", None, "score", 3, 3)] == ["t3", "t7"]
    assert [a.alert_id for a in q.alert_queue(db, "open", "block", "oldest", 9, 0)] == ["t1", "t6"]
    check_search_and_export(db)
    history = q.account_history(db, "A", 2)
    assert history["tx_id"].tolist() == ["t6", "t1"]
    assert history["kind"].tolist() == ["TRANSFER", "TRANSFER"]

    quality = q.live_quality(db, 0, "v1")
    # alerts t1 t2 t3 t6 t7: labelled 4 (t7 unknown), frauds among them t1 t2
    assert quality["precision"] == pytest.approx(2 / 4)
    # frauds t1 t2 t4: t1 t2 alerted
    assert quality["recall"] == pytest.approx(2 / 3)
    assert quality["analyst_precision"] is None

    hist = q.score_histogram(db, 0, 10)
    assert hist["transactions"].sum() == 8
    assert set(hist["label"]) == {"fraud", "legitimate", "unknown"}
    assert hist.loc[(hist["score_from"] - 0.9).abs() < 1e-9, "transactions"].sum() == 1
    kinds = q.decisions_by_kind(db, T0 + 1_000)
    assert kinds["transactions"].sum() == 7
    top = q.riskiest(db, "counterparty", 0, 2)
    assert top["counterparty"].tolist() == ["M2", "M1"]
    assert top["alerts"].tolist() == [3, 2]
    assert top["labelled_frauds"].tolist() == [2, 0]
    assert q.sample_start_ms(db, 3) == T0 + 5_000
    trend = q.trend_series(db, 0, 60_000)
    assert trend["fraud_rate"].iloc[0] == pytest.approx(6 / 15)

    add_user(db, "ana", "analyst", None, actor="test")
    ana = User("ana", "analyst")
    stored = store_verdict(db, ana, "t3", "false_positive", T0 + 90_000)
    assert (stored.status, stored.analyst, stored.reviewed_at_ms) == (
        "false_positive",
        "ana",
        T0 + 90_000,
    )
    store_verdict(db, ana, "t7", "confirmed_fraud", T0 + 91_000)
    assert q.alert_counts(db) == {"open": 3, "confirmed_fraud": 1, "false_positive": 1}
    assert [a.alert_id for a in q.verdicts_since(db, T0 + 90_500)] == ["t7"]
    sample = q.labelled_sample(db, 100)
    labels = dict(zip(sample["tx_id"], sample["label"], strict=True))
    assert labels["t7"] == 1 and labels["t3"] == 0  # verdicts: t7 had no label, t3 agreed
    assert len(sample) == 8
    assert q.live_quality(db, 0, "v1")["analyst_precision"] == pytest.approx(0.5)
    with pytest.raises(StoreError, match="not in the store"):
        store_verdict(db, ana, "missing", "confirmed_fraud", T0)
    with pytest.raises(StoreError, match="verdict"):
        store_verdict(db, ana, "t1", "open", T0)
    assert [(e.action, e.target) for e in recent_audit(db, 9, "ana")] == [
        ("verdict stored", "t7"),
        ("verdict stored", "t3"),
    ]
    events = q.model_events(db)
    assert [(at - T0, v, e, c) for at, v, e, c, _ in events] == [
        (2000, "v2", "promoted", "v1"),
        (1000, "v2", "evaluated", "v1"),
        (0, "v2", "trained", "v1"),
    ]
    assert events[1][4]["challenger"] == {"average_precision": 0.5}


def test_queries_on_sqlite(db: Database) -> None:
    check_queries(db)


def test_sqlite_history_spans_insertion_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite indexes an account's rows per insertion block; its history is still the newest by
    event time over every block, and blocks go on from the stored rows after a reopen."""
    monkeypatch.setattr(_sqlite, "_BLOCK_ROWS", 2)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    arrival = [6, 0, 1, 2, 3, 4, 5, 7]  # A's newest transaction (t6) lands in the oldest block
    for part in (arrival[:4], arrival[4:]):
        store = open_store(url)
        store.open()
        for i in part:
            store.write(known_batch([i]))
            store.flush()
        store.close()
    db = Database(url)
    try:
        blocks = db.rows("SELECT tx_id, ingest_block FROM transactions_enriched ORDER BY rowid")
        assert blocks == [
            (f"t{i}", b) for i, b in zip(arrival, [0, 0, 1, 1, 2, 2, 3, 3], strict=True)
        ]
        assert q.account_history(db, "A", 2)["tx_id"].tolist() == ["t6", "t1"]
        assert q.account_history(db, "A", 9)["tx_id"].tolist() == ["t6", "t1", "t0"]
        assert q.account_history(db, "C", 9)["tx_id"].tolist() == ["t5", "t4"]
        assert q.account_history(db, "nobody", 9).empty
        plan = " / ".join(
            r[-1] for r in db.rows("EXPLAIN QUERY PLAN " + q.history_sql("sqlite"), ("A", 9))
        )
        assert "SEARCH transactions_enriched USING INDEX ix_enriched_account_block" in plan
        assert "SCAN transactions_enriched" not in plan
        db.execute("DELETE FROM transactions_enriched")
        assert q.account_history(db, "A", 9).empty
    finally:
        db.close()


def test_notification_failures_listed(db: Database, tmp_path: Path) -> None:
    assert q.notification_failures(db)[0] == 0
    store = open_store(db.url)
    store.open()
    store.record_notification_failure("t1", "webhook", 5, "HTTP 503", "{}")  # type: ignore[attr-defined]
    store.close()
    count, frame = q.notification_failures(db)
    assert count == 1 and frame["error"].tolist() == ["HTTP 503"]


def test_unknown_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        Database("mysql://x")
    with pytest.raises(ValueError, match="store file"):
        Database("sqlite:///:memory:")
