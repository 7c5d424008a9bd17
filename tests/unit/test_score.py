"""``fraudstream score``: a file's rows scored as the detector scores them, batch by batch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fraudstream.cli._app import app
from fraudstream.cli._score import score as _registered  # noqa: F401  (registers the command)
from fraudstream.errors import ModelError
from fraudstream.features import LABEL_FEATURES, engine_for, partition_of
from fraudstream.model import Bundle, train_bundle
from fraudstream.model._fdh import fdh_batch, fdh_labels
from fraudstream.rules import Rule
from fraudstream.schema import DECISIONS, LabelMessage, TxBatch, read_labels
from fraudstream.schema._label_files import complete_labels
from fraudstream.simulate import (
    CardSimulator,
    PaySimSimulator,
    card_table,
    labels_path,
    paysim_table,
)
from fraudstream.simulate._labels import batch_labels, label_table
from fraudstream.sinks import RuleStore

PARTITIONS = 3
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path, TxBatch]:
    """A bundle trained on simulated history with its labels, and the next 6,000 rows of the
    same simulation written to ``next.parquet`` with their labels beside it."""
    root = tmp_path_factory.mktemp("score")
    sim = PaySimSimulator(accounts=1500, seed=5, rate_per_s=0.2, fraud_rate=0.02)
    history = sim.history(20_000)
    bundle = train_bundle(history, labels=batch_labels(history, seed=5), gap_ms=60_000)
    bundle.save(root / "models")
    later = sim.history(6_000)
    pq.write_table(paysim_table(later), root / "next.parquet")
    pq.write_table(label_table(batch_labels(later, seed=6)), root / "next.labels.parquet")
    return bundle, root, later


def detector_like(
    bundle: Bundle, h: TxBatch, labels: list[LabelMessage], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[tuple[str, float, float]]]]:
    """What the detector computes for ``h`` replayed into a topic of :data:`PARTITIONS`
    partitions (key = account): one engine fed batches of random sizes, each row with its
    partition; per batch one score, decide and explain_alerts call.

    The engine knows the partition count, as training's replay does: the card engine's label
    features read it (a confirmed fraud counts in its own partition only). ``stream._build``
    builds the detector's engine without it today, so a card detector with labels on more than
    one partition differs from training and from this (reported; PaySim's engine ignores it).
    """
    engine = engine_for(bundle.mode, partitions=PARTITIONS)
    engine.labels.add(labels)
    part = partition_of(h.account, PARTITIONS)
    rng = np.random.default_rng(seed)
    xs, scores, decisions, reasons = [], [], [], []
    i = 0
    while i < len(h):
        idx = np.arange(i, min(len(h), i + int(rng.integers(1, 900))))
        x = engine.update_and_extract(h.take(idx), part[idx])
        s = bundle.score(x)
        d = bundle.decide(s)
        xs.append(x)
        scores.append(s)
        decisions.append(d)
        reasons += bundle.explain_alerts(x, d)
        i = int(idx[-1]) + 1
    return np.concatenate(xs), np.concatenate(scores), np.concatenate(decisions), reasons


def run_score(
    monkeypatch: pytest.MonkeyPatch, bundle: Bundle, *args: str, suffix: str = ".parquet"
) -> pl.DataFrame | BaseException:
    """``fraudstream score ARGS`` with ``bundle``: the frame written, or the error raised."""
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__PARTITIONS", str(PARTITIONS))
    out = Path(args[0]).with_name(f"scored-{uuid.uuid4().hex[:8]}{suffix}")
    result = runner.invoke(app, ["score", *args, "--model", str(bundle.path), "--out", str(out)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return result.exception
    assert result.exit_code == 0, result.output
    return pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out)


def test_scores_decisions_and_reasons_are_the_detectors(
    world: tuple[Bundle, Path, TxBatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, root, later = world
    facts = {
        t: (later.account[i], later.counterparty[i], int(later.event_time_ms[i]))
        for i, t in enumerate(later.tx_id)
    }
    labels, _ = complete_labels(read_labels(root / "next.labels.parquet").labels, facts)
    x, scores, decisions, reasons = detector_like(bundle, later, labels, seed=1)
    label_cols = [bundle.feature_names.index(n) for n in LABEL_FEATURES]
    assert np.count_nonzero(x[:, label_cols]) > 0  # the labels beside the file reach features
    got = run_score(monkeypatch, bundle, str(root / "next.parquet"), suffix=".csv")
    assert isinstance(got, pl.DataFrame)
    assert got["tx_id"].to_list() == later.tx_id
    assert got["model_version"].unique().to_list() == [bundle.version]
    np.testing.assert_allclose(got["score"].to_numpy(), scores, rtol=0, atol=1e-12)
    assert got["decision"].to_list() == [DECISIONS[d] for d in decisions]
    assert 0 < np.count_nonzero(decisions) < len(decisions)
    for text, expected in zip(got["reasons"].to_list(), reasons, strict=True):
        codes = [(r["feature"], r["value"], r["contribution"]) for r in json.loads(text)]
        assert [c[0] for c in codes] == [e[0] for e in expected]
        np.testing.assert_allclose([c[1:] for c in codes], [e[1:] for e in expected], atol=1e-6)
    assert got["label"].to_list() == later.label.tolist()
    _, unlabelled, _, _ = detector_like(bundle, later, [], seed=2)
    assert not np.allclose(unlabelled, scores)  # so the labels did change some scores


def test_the_files_fraud_column_is_copied_never_scored_and_columns_map(
    world: tuple[Bundle, Path, TxBatch], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle, root, later = world
    frame = pl.read_parquet(root / "next.parquet")
    base = run_score(monkeypatch, bundle, str(root / "next.parquet"))
    assert isinstance(base, pl.DataFrame)
    flipped = tmp_path / "flipped.csv"
    frame.with_columns((1 - pl.col("isFraud")).alias("isFraud")).rename(
        {"amount": "amt", "nameOrig": "customer"}
    ).write_csv(flipped)
    pl.read_parquet(root / "next.labels.parquet").write_csv(tmp_path / "flipped.labels.csv")
    got = run_score(
        monkeypatch, bundle, str(flipped), "--column", "amount=amt", "--column", "nameOrig=customer"
    )
    assert isinstance(got, pl.DataFrame)
    assert got["tx_id"].to_list() == base["tx_id"].to_list()
    np.testing.assert_allclose(got["score"].to_numpy(), base["score"].to_numpy(), atol=1e-12)
    assert got["label"].to_list() == (1 - later.label).tolist()
    declared = tmp_path / "flipped.toml"  # the same renaming as a schema declaration
    declared.write_text('format = "paysim"\n[fields]\namt = "amount"\ncustomer = "account"\n')
    by_schema = run_score(monkeypatch, bundle, str(flipped), "--schema", str(declared))
    assert isinstance(by_schema, pl.DataFrame)
    assert by_schema["tx_id"].to_list() == base["tx_id"].to_list()
    np.testing.assert_allclose(by_schema["score"].to_numpy(), got["score"].to_numpy(), atol=0)
    refused = run_score(monkeypatch, bundle, str(flipped), "--column", "a=amt")
    assert isinstance(refused, BaseException)
    assert "unknown target field 'a'" in str(refused)


def test_a_bundle_scores_only_its_own_format(
    world: tuple[Bundle, Path, TxBatch], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = world[0]
    sim = CardSimulator(customers=50, seed=1)
    cards = tmp_path / "cards.parquet"
    pq.write_table(card_table(sim.next_columns(300), sim.start_ms), cards)
    refused = run_score(monkeypatch, bundle, str(cards))
    assert isinstance(refused, ModelError)
    assert "scores paysim transactions, the file is card" in str(refused)


def test_card_files_score_as_the_card_detector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = CardSimulator(customers=500, seed=4)
    frame = pl.from_arrow(card_table(sim.next_columns(60_000), sim.start_ms))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort("TX_DATETIME", maintain_order=True)  # the file's (and replay's) order
    labels = fdh_labels(frame)
    early = frame.filter(pl.col("TX_DATETIME") < frame["TX_DATETIME"][45_000])
    bundle = train_bundle(fdh_batch(early), mode="card", labels=labels, gap_ms=86_400_000)
    bundle.save(tmp_path / "models")
    path = tmp_path / "cards.csv"
    frame.write_csv(path)
    pl.from_arrow(label_table(labels)).write_csv(labels_path(path))  # type: ignore[union-attr]
    got = run_score(monkeypatch, bundle, str(path))
    assert isinstance(got, pl.DataFrame)
    history = fdh_batch(frame)
    _, scores, decisions, _ = detector_like(bundle, history, labels, seed=3)
    assert got["tx_id"].to_list() == history.tx_id
    np.testing.assert_allclose(got["score"].to_numpy(), scores, rtol=0, atol=1e-12)
    assert got["decision"].to_list() == [DECISIONS[d] for d in decisions]
    assert np.count_nonzero(decisions) > 0


def test_the_stores_live_rules_decide_after_the_model_with_rules(
    world: tuple[Bundle, Path, TxBatch], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle, root, later = world
    db = f"sqlite:///{tmp_path / 'rules.db'}"
    with RuleStore(db) as store:
        rule = Rule("huge", "amount > 200000", "block", status="live")
        store.add("pre_auth", rule, author="test")
    monkeypatch.setenv("FRAUDSTREAM_STORE__URL", db)
    plain = run_score(monkeypatch, bundle, str(root / "next.parquet"))
    ruled = run_score(monkeypatch, bundle, str(root / "next.parquet"), "--rules")
    assert isinstance(plain, pl.DataFrame) and isinstance(ruled, pl.DataFrame)
    huge = later.amount > 200_000
    assert 0 < huge.sum() < len(later) and "rules_fired" not in plain.columns
    assert (plain.filter(pl.Series(huge))["decision"] != "block").any()  # the rule changes some
    assert (ruled["score"] == plain["score"]).all()
    decision = np.where(huge, "block", plain["decision"].to_numpy())
    assert ruled["decision"].to_list() == decision.tolist()
    assert ruled["rules_fired"].to_list() == ["huge" if h else "" for h in huge]
    reasons = ruled.filter(pl.Series(huge))["reasons"].to_list()
    assert all(json.loads(r) for r in reasons)  # rule-blocked rows are explained too
