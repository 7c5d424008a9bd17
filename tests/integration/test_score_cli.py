"""``fraudstream score FILE`` gives what ``detect`` stores once ``replay FILE`` sent it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from fraudstream.features import LABEL_FEATURES
from fraudstream.model import Bundle, train_bundle
from fraudstream.model._fdh import fdh_batch, fdh_labels
from fraudstream.simulate import (
    CardSimulator,
    PaySimSimulator,
    card_table,
    labels_path,
    paysim_table,
)
from fraudstream.simulate._labels import batch_labels, label_table
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics

from ._kafka_util import build_detector

pytestmark = pytest.mark.integration

PARTITIONS = 3
ROWS = 3_000


def _cli(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_KAFKA__PARTITIONS": str(PARTITIONS),
    }
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_score_equals_the_stored_decisions_of_a_replayed_file(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    # 4 hours of history, with the analysts' and chargebacks' labels beside it
    history = PaySimSimulator(accounts=400, seed=21, rate_per_s=0.2, fraud_rate=0.03).history(ROWS)
    path = tmp_path / "tx.parquet"
    pq.write_table(paysim_table(history), path)
    pq.write_table(label_table(batch_labels(history, seed=21)), labels_path(path))
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    labels_topic = f"labels-{unique}"

    sent = _cli(
        "replay", str(path), "--topic", topics.source, "--labels-topic", labels_topic,
        bootstrap=bootstrap,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    store.open()
    detector = build_detector(
        client, topics, f"g-{unique}", store, bundle, batch_max=400, labels=labels_topic
    )
    detector.run(lambda: False, idle_exit_s=4.0)
    assert detector.stats.valid == ROWS

    out = tmp_path / "scores.parquet"
    scored = _cli("score", str(path), "--model", str(bundle.path), "--out", str(out), bootstrap="")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    mine = pl.read_parquet(out)
    with sqlite3.connect(db) as conn:
        stored = pl.DataFrame(
            conn.execute(
                "SELECT tx_id, score, decision, features FROM transactions_enriched"
            ).fetchall(),
            schema=["tx_id", "score", "decision", "features"],
            orient="row",
        )
        alerts = dict(conn.execute("SELECT tx_id, reasons FROM fraud_alerts").fetchall())
    both = mine.join(stored, on="tx_id", suffix="_stored", how="inner")
    assert both.height == ROWS == mine.height
    np.testing.assert_allclose(both["score"], both["score_stored"], rtol=0, atol=1e-9)
    assert both["decision"].to_list() == both["decision_stored"].to_list()
    assert 0 < len(alerts) == int((both["decision"] != "allow").sum())
    for tx, reasons in zip(mine["tx_id"], mine["reasons"], strict=True):
        if tx in alerts:
            got, want = json.loads(reasons), json.loads(alerts[tx])
            assert [r["feature"] for r in got] == [r["feature"] for r in want]
            for a, b in zip(got, want, strict=True):
                assert a["contribution"] == pytest.approx(b["contribution"], abs=1e-6)
    x = np.stack([np.frombuffer(blob, "<f4") for blob in stored["features"]])
    label_cols = [bundle.feature_names.index(n) for n in LABEL_FEATURES]
    lit = int(np.count_nonzero(x[:, label_cols].any(axis=1)))
    assert lit > 0, "label features must be non-zero on some rows for this to cover labels"


def test_score_equals_the_stored_scores_of_a_replayed_card_file(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    sim = CardSimulator(customers=500, seed=4)
    frame = pl.from_arrow(card_table(sim.next_columns(60_000), sim.start_ms))
    assert isinstance(frame, pl.DataFrame)
    labels = fdh_labels(frame)  # each fraud known 7 days later, as in the handbook
    early = frame.filter(pl.col("TX_DATETIME") < frame["TX_DATETIME"][45_000])
    bundle = train_bundle(
        fdh_batch(early), mode="card", labels=labels, gap_ms=86_400_000, partitions=PARTITIONS
    )
    bundle.save(tmp_path / "models")
    path = tmp_path / "cards.parquet"
    frame.write_parquet(path)
    pq.write_table(label_table(labels), labels_path(path))
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    labels_topic = f"labels-{unique}"
    sent = _cli(
        "replay", str(path), "--topic", topics.source, "--labels-topic", labels_topic,
        bootstrap=bootstrap,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    store.open()
    detector = build_detector(
        client, topics, f"g-{unique}", store, bundle, batch_max=400, labels=labels_topic
    )
    detector.run(lambda: False, idle_exit_s=4.0)
    assert detector.stats.valid == frame.height
    out = tmp_path / "scores.parquet"
    scored = _cli("score", str(path), "--model", str(bundle.path), "--out", str(out), bootstrap="")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT tx_id, score FROM transactions_enriched").fetchall())
    mine = pl.read_parquet(out)
    assert len(stored) == mine.height
    np.testing.assert_allclose(
        mine["score"].to_numpy(), [stored[t] for t in mine["tx_id"]], rtol=0, atol=1e-9
    )
