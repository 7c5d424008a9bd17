"""Label-delay-aware feedback (``sinks._feedback``) on a hand-built SQLite store whose figures are
counted by hand below; ``tests/integration/test_labels_store.py`` runs the same check on
PostgreSQL. Also the console line, the dashboard's table and the Model page showing it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fraudstream.dashboard import Database
from fraudstream.dashboard._model import feedback_table
from fraudstream.schema import LabelMessage
from fraudstream.sinks import (
    Feedback,
    Store,
    feedback_line,
    feedback_lines,
    label_feedback,
    open_store,
)

from .test_dashboard_app import _page, store_url  # noqa: F401 - the Model page's fixture
from .test_sinks import make_scored

H = 3_600_000
D = 24 * H
#: The store's newest event time: ages are measured from it.
T = 1_700_000_000_000 + 30 * D
#: When the labels became known.
L = T + H
#: (tx_id, age of the event, decision, ground truth: 1 fraud, 0 genuine, -1 none)
TRANSACTIONS = [
    ("a1", 0, "block", 1),
    ("a2", 10 * 60_000, "review", 1),
    ("a3", 20 * 60_000, "review", 0),
    ("a4", 30 * 60_000, "allow", 1),
    ("a5", 40 * 60_000, "allow", 0),
    ("b1", 2 * H, "block", 1),
    ("b2", 5 * H, "review", 0),
    ("b3", H, "review", -1),  # exactly 1 h old: the 1-24 h bucket
    ("c1", 2 * D, "allow", 0),
    ("c2", 3 * D, "review", 0),
    ("d1", 7 * D, "block", 1),  # exactly 7 days old: the > 7 d bucket
    ("d2", 9 * D, "allow", 0),
]
#: (tx_id, verdict, source, labelled_at_ms)
LABELS = [
    ("a1", 1, "chargeback", L),  # contradicted later: the analyst's genuine wins
    ("a1", 0, "analyst", L + 10),
    ("a2", 1, "analyst", L),
    ("a4", 1, "chargeback", L),  # a fraud that was allowed
    ("b1", 0, "analyst", L),  # same time: the chargeback takes precedence
    ("b1", 1, "chargeback", L),
    ("b2", 0, "rule", L),  # same time and source: fraud wins
    ("b2", 1, "rule", L),
    ("c1", 1, "simulator", L),
    ("d1", 0, "analyst", L + 5),  # after the dashboard's confirmed_fraud at L
    ("zz", 1, "dispute", L),  # a transaction not stored: counts nowhere
]
#: (alert_id, status, reviewed_at_ms): the dashboard's own verdicts
REVIEWS = [("b3", "false_positive", L), ("d1", "confirmed_fraud", L)]


def seed_feedback(store: Store, db: Database) -> None:
    """``TRANSACTIONS`` in one batch, ``LABELS`` (one recorded twice) and ``REVIEWS``."""
    ids, ages, decisions, truth = zip(*TRANSACTIONS, strict=True)
    batch = make_scored(ids, decisions, labels=truth)
    batch.tx.event_time_ms = np.array([T - age for age in ages], np.int64)
    store.write(batch)
    store.flush()
    labels = [
        LabelMessage(tx_id=tx, label=verdict, source=source, labelled_at_ms=at, analyst="ana")
        for tx, verdict, source, at in LABELS
    ]
    assert store.record_labels([*labels, labels[2]]) == len(LABELS)
    assert store.record_labels(labels[2:4]) == 0
    db.execute_many(
        "UPDATE fraud_alerts SET status = ?, analyst = 'ana', reviewed_at_ms = ? "
        "WHERE alert_id = ?",
        [(status, at, alert_id) for alert_id, status, at in REVIEWS],
    )


#: Counted by hand: age → (alerts, fraud verdicts, genuine verdicts, unlabelled, labelled frauds,
#: precision, recall, ground-truth precision, ground-truth recall).
EXPECTED = {
    # alerts a1 a2 a3: a2 fraud, a1 genuine (latest), a3 none; labelled frauds a2 a4 (allowed)
    # truth: alerts a1 a2 a3 (2 frauds), frauds a1 a2 a4 (2 alerted)
    "< 1 h": (3, 1, 1, 1, 2, 1 / 2, 1 / 2, 2 / 3, 2 / 3),
    # alerts b1 b2 b3: b1 fraud (chargeback over analyst), b2 fraud (fraud over genuine),
    # b3 genuine (dashboard review); truth: b3 has none, b1 fraud b2 not; fraud b1 alerted
    "1-24 h": (3, 2, 1, 0, 2, 2 / 3, 1.0, 1 / 2, 1.0),
    # alert c2 without a verdict; c1 labelled fraud (simulator) but allowed; no truth fraud
    "1-7 d": (1, 0, 0, 1, 1, None, 0.0, 0.0, None),
    # alert d1: genuine (analyst label after the dashboard's confirmation); truly fraud
    "> 7 d": (1, 0, 1, 0, 0, 0.0, None, 1.0, 1.0),
}


def _figures(f: Feedback) -> tuple[object, ...]:
    return (
        f.alerts,
        f.fraud_verdicts,
        f.genuine_verdicts,
        f.unlabelled,
        f.labelled_frauds,
        f.precision,
        f.recall,
        f.truth_precision,
        f.truth_recall,
    )


def check_feedback(db: Database) -> None:
    """``label_feedback`` on ``seed_feedback``'s store gives ``EXPECTED``."""
    buckets = label_feedback(db.rows)
    assert {f.age: _figures(f) for f in buckets} == EXPECTED  # the same divisions: exact
    assert [f.age for f in buckets] == list(EXPECTED)
    assert feedback_lines(buckets) == [
        "alerts from the last hour: 3, 67 % labelled so far, 50 % of those confirmed fraud "
        "(ground truth: 67 %)",
        "alerts from 1-24 h ago: 3, 100 % labelled so far, 67 % of those confirmed fraud "
        "(ground truth: 50 %)",
        "alerts from 1-7 days ago: 1, 0 % labelled so far (ground truth: 0 %)",
        "alerts from over 7 days ago: 1, 100 % labelled so far, 0 % of those confirmed fraud "
        "(ground truth: 100 %)",
    ]
    # anchored elsewhere: 1 day later every alert is at least a day old
    later = label_feedback(db.rows, anchor_ms=T + D)
    assert [f.alerts for f in later] == [0, 0, 7, 1]


@pytest.fixture
def feedback_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    db = Database(url)
    try:
        seed_feedback(store, db)
        store.close()
        yield db
    finally:
        store.close()
        db.close()


def test_feedback_per_age_against_labels_and_ground_truth(feedback_db: Database) -> None:
    check_feedback(feedback_db)


def test_feedback_of_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    store.close()
    db = Database(url)
    try:
        buckets = label_feedback(db.rows)
    finally:
        db.close()
    assert [f.age for f in buckets] == ["< 1 h", "1-24 h", "1-7 d", "> 7 d"]
    assert all(_figures(f) == (0, 0, 0, 0, 0, None, None, None, None) for f in buckets)
    assert feedback_lines(buckets) == ["no alerts yet"]


def test_feedback_line_reads_as_the_issue_asks() -> None:
    f = Feedback("1-24 h", "1-24 h ago", alerts=412, fraud_verdicts=145, genuine_verdicts=106)
    f = Feedback(**{**f.__dict__, "truth_alerts": 400, "truth_true_alerts": 252})
    assert feedback_line(f) == (
        "alerts from 1-24 h ago: 412, 61 % labelled so far, 58 % of those confirmed fraud "
        "(ground truth: 63 %)"
    )
    assert feedback_line(Feedback("< 1 h", "the last hour", alerts=5)) == (
        "alerts from the last hour: 5, 0 % labelled so far (ground truth: n/a)"
    )


def test_dashboard_feedback_table(feedback_db: Database) -> None:
    table = feedback_table(label_feedback(feedback_db.rows))
    assert list(table.index) == ["< 1 h", "1-24 h", "1-7 d", "> 7 d"]
    assert table.loc["< 1 h"].tolist() == [
        "3", "1", "1", "1", "66.7%", "50.0%", "50.0%", "66.7%", "66.7%",
    ]  # fmt: skip
    assert table.loc["1-7 d", "precision so far"] == "n/a"


@pytest.mark.usefixtures("store_url")
def test_model_page_shows_feedback_from_labels() -> None:
    """``seed_known``'s alerts t1 t2 t3 t6 t7 (truth: fraud t1 t2, genuine t3 t6, t7 none; fraud
    t4 allowed) with labels t1 fraud, t3 genuine and t4 fraud."""
    store = open_store(os.environ["FRAUDSTREAM_STORE__URL"])
    store.open()
    labels = [("t1", 1, "chargeback"), ("t3", 0, "analyst"), ("t4", 1, "dispute")]
    store.record_labels(
        [LabelMessage(tx_id=t, label=v, source=s, labelled_at_ms=T) for t, v, s in labels]
    )
    store.close()
    at = _page("model")
    assert [s.value for s in at.subheader if s.value == "Feedback from labels"]
    (table,) = [t.value for t in at.table if "precision so far" in t.value.columns]
    assert table.loc["< 1 h"].tolist() == [
        "5", "1", "1", "3", "40.0%", "50.0%", "50.0%", "50.0%", "66.7%",
    ]  # fmt: skip
