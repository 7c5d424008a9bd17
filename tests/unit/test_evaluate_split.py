"""``evaluate --train-until --test-from``: the user's time split, with a label delay."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from fraudstream.cli._app import app
from fraudstream.cli._evaluate import evaluate as _registered  # noqa: F401  (registers it)
from fraudstream.cli._score import score as _scores  # noqa: F401  (registers it)
from fraudstream.errors import ModelError
from fraudstream.model import train_bundle
from fraudstream.model._evaluate_split import evaluate_time_split
from fraudstream.model._split import time_split
from fraudstream.schema import LabelMessage, TxBatch
from fraudstream.simulate import PaySimSimulator, labels_path, paysim_table
from fraudstream.simulate._labels import batch_labels, label_table

HOUR_MS = 3_600_000
UNTIL_MS = 10 * HOUR_MS
DELAY_MS = HOUR_MS


@pytest.fixture(scope="module")
def history() -> TxBatch:
    """About 17 hours of PaySim history from event time 0, 2 % fraud."""
    return PaySimSimulator(accounts=1500, seed=3, rate_per_s=0.5, fraud_rate=0.02).history(30_000)


def test_training_rows_are_those_known_by_train_until(history: TxBatch) -> None:
    t, label = history.event_time_ms, history.label
    split = time_split(
        t, label, train_until_ms=UNTIL_MS, test_from_ms=UNTIL_MS + HOUR_MS, label_delay_ms=DELAY_MS
    )
    assert np.array_equal(split.train, t + DELAY_MS <= UNTIL_MS)
    assert np.array_equal(split.test, t >= UNTIL_MS + HOUR_MS)
    parts = (split.fit, split.calibration, split.validation)
    assert sum(p.astype(int) for p in parts).max() == 1  # disjoint
    for before, after in zip(parts, parts[1:], strict=False):  # in time order
        assert t[before].max() < t[after].min()
    assert split.times_ms["train_end_ms"] <= UNTIL_MS - DELAY_MS


@pytest.mark.parametrize(
    ("until", "test_from", "delay", "message"),
    [
        (UNTIL_MS, UNTIL_MS - 1, DELAY_MS, "starts before the training period ends"),
        (UNTIL_MS, UNTIL_MS, -1, "label delay must be >= 0"),
        (DELAY_MS, UNTIL_MS, DELAY_MS, "rows have a label known by --train-until"),
        (UNTIL_MS, 10**12, DELAY_MS, "no labelled row at or after --test-from"),
    ],
)
def test_impossible_splits_are_refused(
    history: TxBatch, until: int, test_from: int, delay: int, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        time_split(
            history.event_time_ms,
            history.label,
            train_until_ms=until,
            test_from_ms=test_from,
            label_delay_ms=delay,
        )


def _relabelled(h: TxBatch, lo_ms: int, hi_ms: int) -> TxBatch:
    """``h`` with the labels of the rows in ``[lo_ms, hi_ms)`` drawn anew (5 % fraud)."""
    window = (h.event_time_ms >= lo_ms) & (h.event_time_ms < hi_ms)
    rng = np.random.default_rng(0)
    label = h.label.copy()
    label[window] = (rng.random(int(window.sum())) < 0.05).astype(np.int8)
    return dataclasses.replace(h, label=label)


def _run(h: TxBatch) -> dict[str, Any]:
    return evaluate_time_split(
        h,
        mode="pre_auth",
        train_until_ms=UNTIL_MS,
        test_from_ms=UNTIL_MS,
        label_delay_ms=DELAY_MS,
        partitions=2,
    )


def test_rows_younger_than_the_label_delay_teach_nothing(history: TxBatch) -> None:
    base = _run(history)
    young = _run(_relabelled(history, UNTIL_MS - DELAY_MS + 1, UNTIL_MS))
    known = _run(_relabelled(history, UNTIL_MS - 2 * DELAY_MS, UNTIL_MS - DELAY_MS))
    for model in ("lightgbm", "logreg"):
        assert young[model] == base[model]  # their labels were not known: never read
        assert known[model] != base[model]  # the same change to known rows is learnt from
    data = base["data"]
    assert isinstance(data, dict)
    t = history.event_time_ms
    assert data["train_rows"] == int(np.count_nonzero(t + DELAY_MS <= UNTIL_MS))
    assert data["test_rows"] == int(np.count_nonzero(t >= UNTIL_MS))
    assert data["test_frauds"] == int(np.count_nonzero((t >= UNTIL_MS) & (history.label == 1)))


def test_the_command_reports_the_asked_model_on_the_test_rows(
    history: TxBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.parquet"
    pq.write_table(paysim_table(history), path)
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__PARTITIONS", "2")
    args = [
        "evaluate",
        str(path),
        "--train-until",
        "1970-01-01T10:00",
        "--label-delay",
        "1h",
        "--model",
        "logreg",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["protocol"] == "time-split" and got["model"] == "logreg"
    assert (got["train_until_ms"], got["test_from_ms"], got["label_delay_ms"]) == (
        UNTIL_MS,
        UNTIL_MS,
        DELAY_MS,
    )
    # the file's own frauds, known an hour later, are the label features' labels here
    direct = evaluate_time_split(
        history,
        mode="pre_auth",
        train_until_ms=UNTIL_MS,
        test_from_ms=UNTIL_MS,
        label_delay_ms=DELAY_MS,
        labels=_frauds_known_later(history, DELAY_MS),
        partitions=2,
        seed=1,
    )
    for key in ("average_precision", "roc_auc", "recall_at_1pct_fpr", "expected_cost"):
        assert got[key] == pytest.approx(direct["logreg"][key], rel=1e-9)
    assert got["review"]["recall"] == pytest.approx(direct["logreg"]["review"]["recall"])


def _frauds_known_later(h: TxBatch, delay_ms: int) -> list[LabelMessage]:
    return [
        LabelMessage(
            h.tx_id[i],
            1,
            int(h.event_time_ms[i]) + delay_ms,
            account=h.account[i],
            counterparty=h.counterparty[i],
            tx_time_ms=int(h.event_time_ms[i]),
            source="simulator",
        )
        for i in np.flatnonzero(h.label == 1).tolist()
    ]


def test_a_trained_bundle_is_measured_on_the_rows_from_test_from(
    history: TxBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.parquet"
    pq.write_table(paysim_table(history), path)
    pq.write_table(label_table(batch_labels(history, seed=3)), labels_path(path))
    early = history.take(np.flatnonzero(history.event_time_ms < UNTIL_MS))
    bundle = train_bundle(early, gap_ms=60_000, partitions=2)
    bundle.save(tmp_path / "models")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__PARTITIONS", "2")
    runner = CliRunner()
    common = ["--model", str(bundle.path), "--out", str(tmp_path / "s.parquet")]
    assert runner.invoke(app, ["score", str(path), *common]).exit_code == 0
    scores = pl.read_parquet(tmp_path / "s.parquet").filter(pl.col("event_time_ms") >= UNTIL_MS)
    args = ["evaluate", str(path), "--bundle", str(bundle.path), "--test-from", str(UNTIL_MS)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["protocol"] == "bundle" and got["bundle"] == bundle.version
    assert got["data"]["test_rows"] == scores.height
    y, s = scores["label"].to_numpy(), scores["score"].to_numpy()
    assert got["average_precision"] == pytest.approx(average_precision_score(y, s), rel=1e-12)
    alerts = scores["decision"] != "allow"
    assert got["alerts"] == int(alerts.sum())
    assert got["review"]["recall"] == pytest.approx(
        int((alerts & (scores["label"] == 1)).sum()) / int(y.sum())
    )
    twice = runner.invoke(app, [*args, "--bundle", str(bundle.path), "--json"])
    assert twice.exit_code == 0, twice.output
    results = json.loads(twice.stdout.strip().splitlines()[-1])["results"]
    assert [r["average_precision"] for r in results] == [got["average_precision"]] * 2
    wrong = runner.invoke(app, [*args, "--train-until", str(UNTIL_MS)])
    assert wrong.exit_code == 1 and "not --train-until" in wrong.output
