"""CardFeatureEngine against an independent batch recomputation of the handbook's definitions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import CARD_FEATURES, FDH_FEATURES, CardFeatureEngine
from fraudstream.schema import TxBatch

DAY_MS = 86_400_000
DELAY_MS = 7 * DAY_MS


def _batch(
    t: list[int], cust: list[int], term: list[int], amt: list[float], y: list[int]
) -> TxBatch:
    n = len(t)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=[str(i) for i in range(n)],
        event_time_ms=np.array(t, dtype=np.int64),
        account=[str(c) for c in cust],
        counterparty=[str(m) for m in term],
        kind=np.zeros(n, dtype=np.int8),
        amount=np.array(amt, dtype=np.float64),
        old_balance_orig=nan,
        new_balance_orig=nan,
        old_balance_dest=nan,
        new_balance_dest=nan,
        label=np.array(y, dtype=np.int8),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )


def batch_fdh_features(df: pl.DataFrame) -> npt.NDArray[np.float64]:
    """The 15 features by brute force per row (columns t, c, m, a, y).

    Customer windows hold the rows up to and including the current one (as pandas' rolling does
    with equal timestamps); terminal windows are ``[t - 7d - w, t - 7d)``.
    """
    t = df["t"].to_numpy()
    c = df["c"].to_numpy()
    m = df["m"].to_numpy()
    a = df["a"].to_numpy()
    y = df["y"].to_numpy()
    out = np.zeros((df.height, 15))
    dt = pl.from_epoch(pl.Series(t), time_unit="ms")
    out[:, 0] = a
    out[:, 1] = (dt.dt.weekday() >= 6).to_numpy()  # polars: Monday = 1
    out[:, 2] = (dt.dt.hour() <= 6).to_numpy()
    pos = np.arange(df.height)
    for i in range(df.height):
        for j, w in enumerate((1, 7, 30)):
            cm = (c == c[i]) & (t > t[i] - w * DAY_MS) & (pos <= i)
            out[i, 3 + 2 * j] = cm.sum()
            out[i, 4 + 2 * j] = a[cm].mean()
            tm = (m == m[i]) & (t >= t[i] - DELAY_MS - w * DAY_MS) & (t < t[i] - DELAY_MS)
            out[i, 9 + 2 * j] = tm.sum()
            out[i, 10 + 2 * j] = y[tm].sum() / tm.sum() if tm.any() else 0.0
    return out


def _engine_features(df: pl.DataFrame, chunks: int) -> npt.NDArray[np.float32]:
    eng = CardFeatureEngine()
    parts = []
    for idx in np.array_split(np.arange(df.height), chunks):
        sub = df[idx.tolist()] if len(idx) else df.head(0)
        parts.append(
            eng.update_and_extract(
                _batch(
                    sub["t"].to_list(),
                    sub["c"].to_list(),
                    sub["m"].to_list(),
                    sub["a"].to_list(),
                    sub["y"].to_list(),
                )
            )
        )
    return np.concatenate(parts)


histories = st.lists(
    st.tuples(
        st.integers(0, 50 * DAY_MS // 60_000),  # minutes over 50 days
        st.integers(0, 3),
        st.integers(0, 3),
        st.floats(0.0, 500.0, allow_nan=False),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows=histories, chunks=st.integers(1, 4))
def test_fdh_features_match_batch_recomputation(
    rows: list[tuple[int, int, int, float, int]], chunks: int
) -> None:
    rows.sort(key=lambda r: r[0])
    df = pl.DataFrame(
        {
            "t": [r[0] * 60_000 for r in rows],
            "c": [r[1] for r in rows],
            "m": [r[2] for r in rows],
            "a": [r[3] for r in rows],
            "y": [r[4] for r in rows],
        }
    )
    got = _engine_features(df, chunks)
    assert got.shape == (len(rows), len(CARD_FEATURES))
    np.testing.assert_allclose(got[:, :15], batch_fdh_features(df), rtol=1e-5, atol=1e-3)


def test_future_labels_never_change_features() -> None:
    t = [i * 3_600_000 for i in range(400)]
    cust = [i % 5 for i in range(400)]
    term = [i % 3 for i in range(400)]
    amt = [float(i % 17) for i in range(400)]
    y0 = [0] * 400
    y1 = [0] * 399 + [1]
    a = CardFeatureEngine().update_and_extract(_batch(t, cust, term, amt, y0))
    b = CardFeatureEngine().update_and_extract(_batch(t, cust, term, amt, y1))
    np.testing.assert_array_equal(a, b)
    y_recent = [1 if i >= 400 - 7 * 24 else 0 for i in range(400)]  # all younger than the delay
    c = CardFeatureEngine().update_and_extract(_batch(t, cust, term, amt, y_recent))
    np.testing.assert_array_equal(a, c)


def test_names_and_unsorted_input() -> None:
    eng = CardFeatureEngine()
    assert eng.feature_names[:15] == FDH_FEATURES
    assert eng.update_and_extract(_batch([], [], [], [], [])).shape == (0, len(CARD_FEATURES))
    try:
        eng.update_and_extract(_batch([2, 1], [0, 0], [0, 0], [1.0, 1.0], [0, 0]))
    except ValueError as exc:
        assert "sorted" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("unsorted input accepted")
