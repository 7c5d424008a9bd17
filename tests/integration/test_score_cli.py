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
from fraudstream.model._data import declared_extras, read_labelled
from fraudstream.schema import LabelMessage, credit_card_layout
from fraudstream.schema._declare import load_schema
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
from .test_replay_schema import SCHEMA

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


#: The public credit-card layout, its columns renamed onto roles, and extra fields of each kind.
CC_SCHEMA = SCHEMA + 'city_pop = "numeric"\n'


def _cc_labels(frame: pl.DataFrame) -> list[LabelMessage]:
    """Each fraud known 7 days later, as in the handbook, named by the file's ids."""
    frauds = frame.filter(pl.col("is_fraud") == 1)
    return [
        LabelMessage(tx, 1, t * 1000 + 7 * 86_400_000, account=str(cc), counterparty=m,
                     tx_time_ms=t * 1000, source="simulator")
        for tx, t, cc, m in frauds.select("trans_num", "unix_time", "cc_num", "merchant").rows()
    ]  # fmt: skip


def test_score_equals_the_stored_scores_of_a_replayed_card_file(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    """Renamed columns and extra fields declared once: train, replay through Kafka, detect,
    and ``score`` give the same scores (extras computed by the same engine in both)."""
    sim = CardSimulator(customers=500, seed=4)
    handbook = pl.from_arrow(card_table(sim.next_columns(60_000), sim.start_ms))
    assert isinstance(handbook, pl.DataFrame)
    frame = credit_card_layout(handbook, sim.customer_xy, sim.terminal_xy)
    missing = pl.int_range(pl.len()) % 97 == 0  # some rows lack an extra field
    frame = frame.with_columns(
        pl.when(missing).then(None).otherwise(pl.col("category")).alias("category")
    )
    path = tmp_path / "cards.parquet"
    frame.write_parquet(path)
    labels = _cc_labels(frame)
    pq.write_table(label_table(labels), labels_path(path))
    schema_file = tmp_path / "schema.toml"
    schema_file.write_text(CC_SCHEMA)
    declaration = load_schema(schema_file)
    history, _ = read_labelled(path, None, schema=declaration)
    early = history.take(np.flatnonzero(history.event_time_ms < history.event_time_ms[45_000]))
    extras = declared_extras(declaration, history)
    bundle = train_bundle(
        early, mode="card", labels=labels, gap_ms=86_400_000, partitions=PARTITIONS, extras=extras
    )
    assert set(bundle.extras.feature_names) >= {
        "category", "city_pop", "distance_km_customer_merchant",
        "category_share_by_customer_30d", "category_distinct_by_customer_1d",
    }  # fmt: skip
    bundle.save(tmp_path / "models")
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    labels_topic = f"labels-{unique}"
    sent = _cli(
        "replay", str(path), "--schema", str(schema_file), "--topic", topics.source,
        "--labels-topic", labels_topic, bootstrap=bootstrap,
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
    scored = _cli(
        "score", str(path), "--schema", str(schema_file), "--model", str(bundle.path),
        "--out", str(out), bootstrap="",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT tx_id, score, features FROM transactions_enriched").fetchall()
    stored = {tx: score for tx, score, _ in rows}
    mine = pl.read_parquet(out)
    assert len(stored) == mine.height
    np.testing.assert_allclose(
        mine["score"].to_numpy(), [stored[t] for t in mine["tx_id"]], rtol=0, atol=1e-9
    )
    x = np.stack([np.frombuffer(blob, "<f4") for _, _, blob in rows])
    code = x[:, bundle.feature_names.index("category")]
    assert np.isnan(code).sum() >= frame.height // 100  # the missing ones reached the model
    distance = x[:, bundle.feature_names.index("distance_km_customer_merchant")]
    assert np.isfinite(distance).all() and distance.max() > 0
