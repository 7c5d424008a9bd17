"""The card engine's 15 handbook features on the real data vs polars rolling windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fraudstream.features import FDH_FEATURES
from fraudstream.model._fdh import fdh_features, fdh_labels, load_fdh

DATA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)

pytestmark = pytest.mark.skipif(
    not DATA.is_file(), reason=f"handbook data absent (expected at {DATA})"
)


def _polars_fdh(df: pl.DataFrame) -> pl.DataFrame:
    """The 15 features from polars rolling windows (an independent batch computation)."""
    out = df.with_columns(
        (pl.col("TX_DATETIME").dt.weekday() >= 6).cast(pl.Float64).alias("TX_DURING_WEEKEND"),
        (pl.col("TX_DATETIME").dt.hour() <= 6).cast(pl.Float64).alias("TX_DURING_NIGHT"),
        pl.int_range(pl.len()).alias("row"),
    )
    by_cust = out.sort(["CUSTOMER_ID", "row"])
    by_term = out.sort(["TERMINAL_ID", "row"])
    for w in (1, 7, 30):
        cust = by_cust.rolling("TX_DATETIME", period=f"{w}d", group_by="CUSTOMER_ID").agg(
            pl.len().cast(pl.Float64).alias(f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"),
            pl.col("TX_AMOUNT").mean().alias(f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"),
        )
        term = by_term.rolling(
            "TX_DATETIME",
            period=f"{w}d",
            offset=f"-{7 + w}d",
            closed="left",
            group_by="TERMINAL_ID",
        ).agg(
            pl.len().cast(pl.Float64).alias(f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"),
            pl.col("TX_FRAUD").cast(pl.Float64).mean().alias(f"TERMINAL_ID_RISK_{w}DAY_WINDOW"),
        )
        cust = cust.drop("CUSTOMER_ID", "TX_DATETIME").with_columns(row=by_cust["row"])
        term = term.drop("TERMINAL_ID", "TX_DATETIME").with_columns(row=by_term["row"])
        out = out.join(cust, on="row").join(term, on="row")
    out = out.with_columns(pl.col("^TERMINAL_ID_RISK_.*$").fill_null(0.0).fill_nan(0.0))
    return out.sort("row")


def test_fdh_features_on_real_slice() -> None:
    df = load_fdh(DATA).filter(pl.col("TX_DATETIME") < pl.datetime(2018, 5, 15))
    got = fdh_features(df, fdh_labels(df)).x[:, : len(FDH_FEATURES)]
    want = _polars_fdh(df).select(FDH_FEATURES).to_numpy()
    # polars puts every row of a second into that second's window; the engine (like pandas in the
    # handbook) only the rows up to the current one: the customer columns differ on such ties.
    tied = df.select(pl.struct("CUSTOMER_ID", "TX_DATETIME").is_duplicated()).to_series().to_numpy()
    assert tied.sum() < 100
    np.testing.assert_allclose(got[~tied], want[~tied], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got[tied][:, 9:], want[tied][:, 9:], rtol=1e-5, atol=1e-3)
