"""Retraining's store side on real SQLite and PostgreSQL: targets from arrived verdicts only
(young unlabelled rows excluded), the gate on stored shadow scores, events, rollback."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from fraudstream.cli._retrain import retrain_cycle
from fraudstream.model import Bundle
from fraudstream.model._registry import (
    challenger_version,
    promote,
    promoted_version,
    rollback,
    set_challenger,
)
from fraudstream.model._retrain import RetrainPolicy, known_targets
from fraudstream.schema import LabelMessage, ScoredBatch, ShadowScores, TxBatch
from fraudstream.sinks import open_store
from fraudstream.sinks._model_events import model_events
from fraudstream.sinks._retrain_rows import stored_history
from fraudstream.sinks._sqlconn import SqlConnection

from ._pg_util import PG_URL

HOUR_MS = 3_600_000
T0 = 1_767_225_600_000
N = 2_000


def _models(tmp_path: Path, bundle: Bundle) -> Path:
    """A models directory with the session's bundle as ``champ`` (promoted) and ``chall``
    (registered as the challenger)."""
    root = tmp_path / "models"
    root.mkdir()
    assert bundle.path is not None
    for name in ("champ", "chall"):
        shutil.copytree(bundle.path, root / name)
    promote(root, "champ")
    set_challenger(root, "chall")
    return root


def _tx(truth: np.ndarray) -> TxBatch:
    """``N`` transactions an hour apart in event time / 10; ``label`` the ground truth."""
    t = T0 + np.arange(N, dtype=np.int64) * (HOUR_MS // 10)
    return TxBatch(
        tx_id=[f"tx-{i}" for i in range(N)],
        event_time_ms=t,
        account=[f"a{i % 50}" for i in range(N)],
        counterparty=[f"m{i % 20}" for i in range(N)],
        kind=np.zeros(N, np.int8),
        amount=np.full(N, 100.0),
        old_balance_orig=np.full(N, 1000.0),
        new_balance_orig=np.full(N, 900.0),
        old_balance_dest=np.zeros(N),
        new_balance_dest=np.full(N, 100.0),
        label=truth.astype(np.int8),
        step=np.arange(N, dtype=np.int64) // 10,
        flagged=np.zeros(N, np.int8),
    )


def _fill(url: str, schema: str | None, bundle: Bundle, frauds: int, good_challenger: bool) -> None:
    """Stored rows scored by ``champ`` with ``chall`` in shadow; ``frauds`` fraud verdicts."""
    rng = np.random.default_rng(3)
    fraud = np.zeros(N, bool)
    fraud[rng.choice(N - 100, 200, replace=False)] = True
    tx = _tx(fraud)
    champion = rng.random(N)  # uninformative
    challenger = np.where(fraud, 0.6 + 0.4 * rng.random(N), 0.7 * rng.random(N))
    if not good_challenger:
        challenger = champion + 1e-6
    store = open_store(url, schema=schema)
    store.open()
    try:
        store.write(
            ScoredBatch(
                tx=tx,
                feature_names=bundle.feature_names,
                features=np.zeros((N, len(bundle.feature_names)), np.float32),
                score=champion,
                decision=np.zeros(N, np.int8),
                reasons=[[] for _ in range(N)],
                model_version="champ",
                partition=np.zeros(N, np.int32),
                offset=np.arange(N, dtype=np.int64),
                processed_at_ms=int(time.time() * 1000),
                shadow=ShadowScores("chall", challenger, np.zeros(N, np.int8)),
            )
        )
        labelled = np.flatnonzero(fraud)[:frauds]
        store.record_labels(
            [
                LabelMessage(
                    tx_id=f"tx-{i}",
                    label=1,
                    labelled_at_ms=int(tx.event_time_ms[i]) + HOUR_MS,
                    source="chargeback",
                )
                for i in labelled
            ]
        )
        store.flush()
    finally:
        store.close()


def _policy(**kw: object) -> RetrainPolicy:
    return RetrainPolicy(label_delay_ms=24 * HOUR_MS, margin=0.05, min_fraud_labels=30, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}", None
    schema = request.getfixturevalue("pg_schema")
    return PG_URL, schema


def _events(url: str, schema: str | None) -> list[str]:
    db = SqlConnection(url, schema=schema)
    db.open()
    try:
        return [f"{e.version}:{e.event}" for e in model_events(db)]
    finally:
        db.close()


def test_targets_come_from_verdicts_and_young_unlabelled_rows_are_excluded(
    url: tuple[str, str | None], bundle: Bundle
) -> None:
    store_url, schema = url
    _fill(store_url, schema, bundle, frauds=150, good_challenger=True)
    db = SqlConnection(store_url, schema=schema)
    db.open()
    try:
        history, labels = stored_history(db, 0, 2**62)
    finally:
        db.close()
    assert len(history) == N and len(labels) == 150
    as_of = int(history.event_time_ms.max())
    target = known_targets(history.label, history.event_time_ms, as_of, 24 * HOUR_MS)
    verdict = {lab.tx_id for lab in labels}
    has_verdict = np.array([t in verdict for t in history.tx_id])
    young = history.event_time_ms + 24 * HOUR_MS > as_of
    assert (target[has_verdict] == 1).all()
    assert (target[young & ~has_verdict] == -1).all() and (young & ~has_verdict).sum() > 0
    # a mature row whose stored ground truth is fraud but with no verdict is genuine, not fraud
    assert (target[~young & ~has_verdict] == 0).all()


def test_gate_promotes_a_better_challenger_with_enough_labels_then_rollback(
    url: tuple[str, str | None], bundle: Bundle, tmp_path: Path
) -> None:
    store_url, schema = url
    models = _models(tmp_path, bundle)
    _fill(store_url, schema, bundle, frauds=150, good_challenger=True)
    events = retrain_cycle(store_url, models, _policy(), pg_schema=schema, check_only=True)
    assert [e.event for e in events] == ["promoted"]
    figures = events[0].detail
    ahead = figures["challenger"]["average_precision"] - figures["champion"]["average_precision"]
    assert ahead >= 0.05 and figures["fraud_labels"] >= 30
    assert promoted_version(models) == "chall" and challenger_version(models) is None
    assert rollback(models) == ("chall", "champ")
    assert _events(store_url, schema) == ["chall:promoted"]
    stored = json.loads((models / "promotion.json").read_text())
    assert stored["history"][-1] == {**stored["history"][-1], "rollback_of": "chall"}


def test_gate_waits_with_too_few_fraud_labels_and_rejects_below_margin(
    url: tuple[str, str | None], bundle: Bundle, tmp_path: Path
) -> None:
    store_url, schema = url
    models = _models(tmp_path, bundle)
    _fill(store_url, schema, bundle, frauds=10, good_challenger=True)
    events = retrain_cycle(store_url, models, _policy(), pg_schema=schema, check_only=True)
    assert [e.event for e in events] == ["shadow_waiting"]
    assert "10 fraud verdicts" in events[0].detail["reason"]
    assert promoted_version(models) == "champ" and challenger_version(models) == "chall"
    # past the longest shadow period, too few labels reject
    late = _policy(max_shadow_ms=HOUR_MS)
    events = retrain_cycle(store_url, models, late, pg_schema=schema, check_only=True)
    assert [e.event for e in events] == ["rejected"] and challenger_version(models) is None


def test_gate_rejects_a_challenger_below_the_margin(
    url: tuple[str, str | None], bundle: Bundle, tmp_path: Path
) -> None:
    store_url, schema = url
    models = _models(tmp_path, bundle)
    _fill(store_url, schema, bundle, frauds=150, good_challenger=False)
    events = retrain_cycle(store_url, models, _policy(), pg_schema=schema, check_only=True)
    assert [e.event for e in events] == ["rejected"]
    assert "below the margin" in events[0].detail["reason"]
    assert promoted_version(models) == "champ" and challenger_version(models) is None
    assert _events(store_url, schema) == ["chall:rejected"]
