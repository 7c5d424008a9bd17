"""Chapter 3 of the handbook, reproduced: logistic regression on its 15 features."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from fraudstream.model._fdh import fdh_features, fdh_labels, load_fdh, run_ch3
from fraudstream.schema import read_labels
from fraudstream.simulate._labels import label_table

DATA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)

pytestmark = pytest.mark.skipif(
    not DATA.is_file(), reason=f"handbook data absent (expected at {DATA})"
)


def test_ch3_logreg_matches_the_published_baseline(tmp_path: Path) -> None:
    # the features are causal, so history after the last test day changes nothing
    df = load_fdh(DATA).filter(pl.col("TX_DATETIME") < pl.datetime(2018, 8, 15))
    # labels on their own channel: a file of the frauds, each known 7 days later
    pq.write_table(label_table(fdh_labels(df)), tmp_path / "labels.parquet")
    labels = read_labels(tmp_path / "labels.parquet").labels
    assert len(labels) == int(df["TX_FRAUD"].sum())
    got = run_ch3(fdh_features(df.drop("TX_FRAUD"), labels), "logreg")
    assert got["auc_roc"] == pytest.approx(0.871, abs=0.005)
    assert got["average_precision"] == pytest.approx(0.606, abs=0.005)
    assert got["card_precision_at_100"] == pytest.approx(0.291, abs=0.005)
