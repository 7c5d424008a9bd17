"""Chapter 3 of the handbook, reproduced: logistic regression on its 15 features."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from fraudstream.model._fdh import fdh_features, load_fdh, run_ch3

DATA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)

pytestmark = pytest.mark.skipif(
    not DATA.is_file(), reason=f"handbook data absent (expected at {DATA})"
)


def test_ch3_logreg_matches_the_published_baseline() -> None:
    # the features are causal, so history after the last test day changes nothing
    df = load_fdh(DATA).filter(pl.col("TX_DATETIME") < pl.datetime(2018, 8, 15))
    got = run_ch3(fdh_features(df), "logreg")
    assert got["auc_roc"] == pytest.approx(0.871, abs=0.005)
    assert got["average_precision"] == pytest.approx(0.606, abs=0.005)
    assert got["card_precision_at_100"] == pytest.approx(0.291, abs=0.005)
