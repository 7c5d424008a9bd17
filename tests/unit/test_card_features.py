"""CardFeatureEngine against an independent batch recomputation of the handbook's definitions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import (
    CARD_FEATURES,
    FDH_FEATURES,
    CardFeatureEngine,
    LabelBook,
    partition_of,
)
from fraudstream.schema import LabelMessage, TxBatch

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


def _book(b: TxBatch, known_after_ms: int = DELAY_MS) -> LabelBook:
    """The handbook's labels: each fraud of ``b`` (its ``label``) known ``known_after_ms`` later."""
    book = LabelBook()
    book.add(
        LabelMessage(
            b.tx_id[i],
            1,
            int(b.event_time_ms[i]) + known_after_ms,
            account=b.account[i],
            counterparty=b.counterparty[i],
            tx_time_ms=int(b.event_time_ms[i]),
            source="simulator",
        )
        for i in np.flatnonzero(b.label == 1).tolist()
    )
    return book


def _features(b: TxBatch, **kwargs: int) -> npt.NDArray[np.float32]:
    """A fresh engine's features of ``b``, with ``b``'s frauds as the handbook's labels."""
    return CardFeatureEngine(labels=_book(b), **kwargs).update_and_extract(b)


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


def batch_extra_features(df: pl.DataFrame) -> npt.NDArray[np.float64]:
    """Our amount-profile and terminal fraud-run features by brute force (7 columns).

    ``amount_vs_median/zscore/high_amount_count`` over the customer's earlier rows;
    ``streak/start/last fraud/last5`` over the terminal's rows older than the delay.
    """
    t = df["t"].to_numpy()
    c = df["c"].to_numpy()
    m = df["m"].to_numpy()
    a = df["a"].to_numpy()
    y = df["y"].to_numpy()
    n = df.height
    out = np.zeros((n, 7))
    high = np.zeros(n, dtype=bool)
    pos = np.arange(n)
    for i in range(n):
        prev = (c == c[i]) & (t > t[i] - 30 * DAY_MS) & (pos < i)
        if prev.any():
            med = float(np.median(a[prev]))
            out[i, 0] = a[i] / med if med >= 0.01 else 0.0
            if prev.sum() >= 2:
                out[i, 1] = (a[i] - a[prev].mean()) / max(float(a[prev].std()), 1.0)
        high[i] = prev.sum() >= 3 and out[i, 0] > 3.0
        out[i, 2] = np.count_nonzero((c == c[i]) & (t > t[i] - 14 * DAY_MS) & (pos < i) & high)
        vis = np.flatnonzero((m == m[i]) & (t < t[i] - DELAY_MS))
        labels = y[vis]
        run = 0
        while run < len(vis) and labels[len(vis) - 1 - run] == 1:
            run += 1
        out[i, 3] = run
        out[i, 4] = (t[i] - t[vis[len(vis) - run]]) / DAY_MS if run else 90.0
        frauds = vis[labels == 1]
        out[i, 5] = min((t[i] - t[frauds[-1]]) / DAY_MS, 90.0) if len(frauds) else 90.0
        out[i, 6] = labels[-5:].mean() if len(vis) else 0.0
    return out


def _engine_features(df: pl.DataFrame, chunks: int) -> npt.NDArray[np.float32]:
    whole = _batch(
        df["t"].to_list(),
        df["c"].to_list(),
        df["m"].to_list(),
        df["a"].to_list(),
        df["y"].to_list(),
    )
    eng = CardFeatureEngine(labels=_book(whole))
    return np.concatenate(
        [
            eng.update_and_extract(whole.take(idx))
            for idx in np.array_split(np.arange(df.height), chunks)
        ]
    )


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
    extra = [CARD_FEATURES.index(name) for name in _EXTRA_CHECKED]
    np.testing.assert_allclose(got[:, extra], batch_extra_features(df), rtol=1e-4, atol=1e-3)


_EXTRA_CHECKED = (
    "amount_vs_median_by_customer_30d",
    "amount_zscore_by_customer_30d",
    "high_amount_count_by_customer_14d",
    "terminal_fraud_streak_delayed",
    "days_since_terminal_streak_start_delayed",
    "days_since_terminal_fraud_delayed",
    "terminal_risk_last5_delayed",
)


def test_future_labels_never_change_features() -> None:
    t = [i * 3_600_000 for i in range(400)]
    cust = [i % 5 for i in range(400)]
    term = [i % 3 for i in range(400)]
    amt = [float(i % 17) for i in range(400)]
    y0 = [0] * 400
    y1 = [0] * 399 + [1]
    a = _features(_batch(t, cust, term, amt, y0))
    b = _features(_batch(t, cust, term, amt, y1))
    np.testing.assert_array_equal(a, b)
    y_recent = [1 if i >= 400 - 7 * 24 else 0 for i in range(400)]  # all younger than the delay
    c = _features(_batch(t, cust, term, amt, y_recent))
    np.testing.assert_array_equal(a, c)
    # the transactions' own label is never read: only the book's labels count
    no_book = CardFeatureEngine().update_and_extract(_batch(t, cust, term, amt, [1] * 400))
    np.testing.assert_array_equal(a, no_book)


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


def test_high_amounts_counted_over_two_weeks() -> None:
    """Amounts above 3x the customer's 30-day median are counted for 14 days (label-free)."""
    amounts = [10.0, 10.0, 10.0, 50.0, 25.0, 10.0, 60.0, 10.0, 10.0]
    days = [0, 1, 2, 3, 4, 5, 6, 18, 21]
    n = len(amounts)
    df = pl.DataFrame(
        {"t": [d * DAY_MS for d in days], "c": [0] * n, "m": list(range(n)), "a": amounts}
    ).with_columns(y=pl.lit(0))
    got = _engine_features(df, 1)[:, CARD_FEATURES.index("high_amount_count_by_customer_14d")]
    # 50 and 60 are high (25 is 2.5x); day 18 still sees the day-6 one, day 21 none.
    assert got.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0]
    np.testing.assert_allclose(got, batch_extra_features(df)[:, 2])


def test_state_is_kept_per_partition_and_stream_rows_are_taken_in_time_order() -> None:
    """Offline, a partition's rows get the features they get alone; a stream batch out of time
    order, with its partitions given, gets the same features row for row."""
    rng = np.random.default_rng(5)
    n = 400
    t = np.sort(rng.choice(20 * DAY_MS, n, replace=False)).tolist()
    b = _batch(
        t,
        rng.integers(0, 12, n).tolist(),
        rng.integers(0, 6, n).tolist(),
        rng.uniform(1, 200, n).round(2).tolist(),
        rng.integers(0, 2, n).tolist(),
    )
    part = partition_of(b.account, 3)
    assert len(set(part.tolist())) == 3
    whole = _features(b, partitions=3)
    for p in range(3):
        rows = np.flatnonzero(part == p)
        np.testing.assert_array_equal(whole[rows], _features(b.take(rows)))
    assert not np.array_equal(whole, _features(b))
    shuffled = rng.permutation(n)
    engine = CardFeatureEngine(partitions=3, labels=_book(b))
    stream = engine.update_and_extract(b.take(shuffled), part[shuffled])
    np.testing.assert_array_equal(stream, whole[shuffled])
    assert engine.partitions_held() == [0, 1, 2]
    engine.drop_partitions([1])
    assert engine.partitions_held() == [0, 2]


def _status_at(verdicts: list[tuple[int, int]], t: int) -> int:
    """The verdict in force at ``t``, 0 if none: a verdict counts from its earliest time (one
    source here), the latest time <= t wins, ties go to fraud."""
    earliest: dict[int, int] = {}
    for at, v in verdicts:
        earliest[v] = min(at, earliest.get(v, at))
    known = [(at, v) for v, at in earliest.items() if at <= t]
    return max(known)[1] if known else 0


label_histories = st.lists(
    st.tuples(
        st.integers(0, 40 * DAY_MS // 3_600_000),  # hours over 40 days
        st.integers(0, 2),
        st.integers(0, 2),
        st.lists(st.tuples(st.integers(-2, 30 * 24), st.integers(0, 1)), max_size=3),
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=60, deadline=None)
@given(rows=label_histories, chunks=st.integers(1, 3))
def test_terminal_frauds_use_exactly_the_labels_known_at_each_row(
    rows: list[tuple[int, int, int, list[tuple[int, int]]]], chunks: int
) -> None:
    """Labels at any time (before or after the delay, contradicting ones too): a terminal's
    delayed frauds at ``t`` are its window's transactions whose verdict in force at ``t`` is
    fraud, whatever the batch cuts."""
    rows.sort(key=lambda r: r[0])
    hour = 3_600_000
    n = len(rows)
    t = [r[0] * hour for r in rows]
    b = _batch(t, [r[1] for r in rows], [r[2] for r in rows], [10.0] * n, [0] * n)
    verdicts: list[list[tuple[int, int]]] = [
        [(t[i] + dh * hour, v) for dh, v in r[3]] for i, r in enumerate(rows)
    ]
    book = LabelBook()
    book.add(
        LabelMessage(
            b.tx_id[i],
            v,  # type: ignore[arg-type]
            max(at, 0),
            account=b.account[i],
            counterparty=b.counterparty[i],
            tx_time_ms=t[i],
            source="simulator",
        )
        for i in range(n)
        for at, v in verdicts[i]
    )
    verdicts = [[(max(at, 0), v) for at, v in vs] for vs in verdicts]
    eng = CardFeatureEngine(labels=book)
    got = np.concatenate(
        [eng.update_and_extract(b.take(idx)) for idx in np.array_split(np.arange(n), chunks)]
    )
    col = CARD_FEATURES.index("TERMINAL_ID_RISK_7DAY_WINDOW")
    frauds_90 = CARD_FEATURES.index("terminal_frauds_90d_delayed")
    cust_frauds = CARD_FEATURES.index("customer_frauds_30d_delayed")
    tt = np.array(t)
    for i in range(n):
        lo, hi = t[i] - DELAY_MS - 7 * DAY_MS, t[i] - DELAY_MS
        win = [j for j in range(n) if rows[j][2] == rows[i][2] and lo <= t[j] < hi]
        frauds = sum(_status_at(verdicts[j], t[i]) for j in win)
        assert got[i, col] == np.float32(frauds / len(win) if win else 0.0)
        long = [j for j in range(n) if rows[j][2] == rows[i][2] and hi - 90 * DAY_MS <= t[j] < hi]
        assert got[i, frauds_90] == sum(_status_at(verdicts[j], t[i]) for j in long)
        mine = np.flatnonzero(
            (np.array([r[1] for r in rows]) == rows[i][1]) & (tt >= hi - 30 * DAY_MS) & (tt < hi)
        )
        assert got[i, cust_frauds] == sum(_status_at(verdicts[j], t[i]) for j in mine.tolist())
