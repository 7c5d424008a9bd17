"""The columnar card engine against the former per-object engine (the reference), bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import CARD_FEATURES, CardFeatureEngine, LabelBook, partition_of
from fraudstream.features._card_reference import CardReferenceEngine
from fraudstream.model._fdh import fdh_batch, fdh_labels, load_fdh
from fraudstream.schema import LabelMessage, TxBatch

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DATA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)
F32 = npt.NDArray[np.float32]


def _batch(rows: list[tuple[int, int, int, float]], ids: list[str]) -> TxBatch:
    n = len(rows)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=ids,
        event_time_ms=np.array([r[0] for r in rows], dtype=np.int64),
        account=[f"c{r[1]}" for r in rows],
        counterparty=[f"m{r[2]}" for r in rows],
        kind=np.zeros(n, dtype=np.int8),
        amount=np.array([r[3] for r in rows], dtype=np.float64),
        old_balance_orig=nan,
        new_balance_orig=nan,
        old_balance_dest=nan,
        new_balance_dest=nan,
        label=np.ones(n, dtype=np.int8),  # never read
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )


def _labels(
    b: TxBatch, verdicts: list[list[tuple[int, int, int]]], ghosts: list[tuple[int, int, int]]
) -> list[LabelMessage]:
    """Per row its verdicts ``(hours after the row, label, source)``; ``ghosts``: frauds of
    transactions the stream never carries ``(hours, customer, terminal)``."""
    sources = ("simulator", "analyst", "chargeback")
    out = [
        LabelMessage(
            b.tx_id[i],
            v,  # type: ignore[arg-type]
            max(int(b.event_time_ms[i]) + dh * HOUR_MS, 0),
            account=b.account[i],
            counterparty=b.counterparty[i],
            tx_time_ms=int(b.event_time_ms[i]),
            source=sources[src],  # type: ignore[arg-type]
        )
        for i, vs in enumerate(verdicts)
        for dh, v, src in vs
    ]
    out += [
        LabelMessage(
            f"ghost-{k}",
            1,
            h * HOUR_MS + DAY_MS,
            account=f"c{c}",
            counterparty=f"m{m}",
            tx_time_ms=h * HOUR_MS,
            source="analyst",
        )  # fmt: skip
        for k, (h, c, m) in enumerate(ghosts)
    ]
    return out


def _run(
    engine: CardFeatureEngine | CardReferenceEngine,
    b: TxBatch,
    cuts: list[int],
    partitions: int,
    shuffle: int | None,
) -> F32:
    """Features of ``b`` fed in batches cut at ``cuts``; offline (rows sorted) or, with
    ``shuffle``, as a stream: each batch's rows permuted, their partitions given."""
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    out = np.empty((len(b), len(CARD_FEATURES)), dtype=np.float32)
    part = partition_of(b.account, partitions)
    rng = np.random.default_rng(shuffle)
    for lo, hi in zip(edges, edges[1:], strict=False):
        idx = np.arange(lo, hi)
        if shuffle is None:
            out[idx] = engine.update_and_extract(b.take(idx))
        else:
            idx = rng.permutation(idx)
            out[idx] = engine.update_and_extract(b.take(idx), part[idx])
    return out


def _both(
    b: TxBatch, labels: list[LabelMessage], delay_ms: int, partitions: int,
    cuts: list[int], shuffle: int | None,
) -> tuple[F32, F32, CardFeatureEngine]:  # fmt: skip
    """(new, reference) features of ``b`` with the same labels, cuts and order."""
    new_book, ref_book = LabelBook(), LabelBook()
    new_book.add(labels)
    ref_book.add(labels)
    new = CardFeatureEngine(delay_ms=delay_ms, partitions=partitions, labels=new_book)
    ref = CardReferenceEngine(delay_ms=delay_ms, partitions=partitions, labels=ref_book)
    got = _run(new, b, cuts, partitions, shuffle)
    return got, _run(ref, b, cuts, partitions, shuffle), new


verdict = st.tuples(st.integers(-24, 40 * 24), st.integers(0, 1), st.integers(0, 2))
histories = st.lists(
    st.tuples(
        st.integers(0, 80 * 24 * 60),  # minutes over 80 days: no entity idle for the TTL
        st.integers(0, 5),
        st.integers(0, 4),
        st.one_of(st.floats(0.0, 500.0), st.sampled_from([0.0, 0.005, 10.0, 10.0, 1e6])),
        st.lists(verdict, max_size=3),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    rows=histories,
    ghosts=st.lists(st.tuples(st.integers(0, 80 * 24), st.integers(0, 5), st.integers(0, 4))),
    delay_d=st.sampled_from([0, 1, 7]),
    partitions=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 200), max_size=5),
    shuffle=st.one_of(st.none(), st.integers(0, 2**16)),
)
def test_same_features_as_the_reference_on_any_history(
    rows: list[tuple[int, int, int, float, list[tuple[int, int, int]]]],
    ghosts: list[tuple[int, int, int]],
    delay_d: int,
    partitions: int,
    cuts: list[int],
    shuffle: int | None,
) -> None:
    """Random customers, terminals, times (ties too), amounts, labels at any time (fraud and
    genuine, several sources), frauds of transactions never streamed, partitions, batch cuts,
    offline or as a shuffled stream: every feature of every row equal, bit for bit."""
    rows.sort(key=lambda r: r[0])
    b = _batch(
        [(r[0] * 60_000, r[1], r[2], r[3]) for r in rows], [f"t{i}" for i in range(len(rows))]
    )
    labels = _labels(b, [r[4] for r in rows], ghosts)
    got, want, _ = _both(b, labels, delay_d * DAY_MS, partitions, cuts, shuffle)
    np.testing.assert_array_equal(got, want)


period = st.lists(
    st.tuples(st.integers(0, 20 * 24), st.integers(0, 3), st.integers(0, 3), st.integers(0, 300)),
    min_size=1,
    max_size=40,
)
#: Columns that read a terminal's kept rows back to the oldest, however old (not windowed).
UNWINDOWED = tuple(
    CARD_FEATURES.index(name)
    for name in (
        "terminal_fraud_streak_delayed",
        "days_since_terminal_streak_start_delayed",
        "terminal_risk_last5_delayed",
    )
)


@settings(max_examples=40, deadline=None)
@given(
    first=period,
    second=period,
    frauds=st.lists(st.integers(0, 200), max_size=10),
    cuts=st.lists(st.integers(0, 80), max_size=4),
    cents=st.booleans(),
)
def test_entities_idle_for_the_ttl_are_evicted_and_contribute_nothing(
    first: list[tuple[int, int, int, int]],
    second: list[tuple[int, int, int, int]],
    frauds: list[int],
    cuts: list[int],
    cents: bool,
) -> None:
    """Two periods 120 days apart (more than the TTL, delay + 90 d), frauds labelled in both:
    the first period's state is evicted, and the second's features are exactly the reference's
    on the second period alone. Against the reference over both periods (it never forgets),
    every windowed feature is equal too (integer amounts: its running sums, never rebased, are
    then exact); the three unwindowed fraud-run columns are the documented difference."""
    scale = 0.01 if cents else 1.0
    rows = sorted((h * HOUR_MS, c, m, a * scale) for h, c, m, a in first)
    gap = 120 * DAY_MS
    rows += sorted((gap + h * HOUR_MS, c, m, a * scale) for h, c, m, a in second)
    b = _batch(rows, [f"t{i}" for i in range(len(rows))])
    n1 = len(first)
    verdicts: list[list[tuple[int, int, int]]] = [[] for _ in rows]
    for k in frauds:
        verdicts[k % len(rows)] = [(24, 1, 0)]
    labels = _labels(b, verdicts, [])
    got, want, engine = _both(b, labels, 7 * DAY_MS, 1, [n1, *cuts], None)
    held = engine.entity_count()
    assert held[0] <= len({r[1] for r in second}) and held[1] <= len({r[2] for r in second})
    np.testing.assert_array_equal(got[:n1], want[:n1])
    book = LabelBook()
    book.add(labels)
    later = np.arange(n1, len(rows))
    alone = CardReferenceEngine(labels=book).update_and_extract(b.take(later))
    np.testing.assert_array_equal(got[n1:], alone)
    if not cents:
        windowed = np.setdiff1d(np.arange(len(CARD_FEATURES)), UNWINDOWED)
        np.testing.assert_array_equal(got[n1:, windowed], want[n1:, windowed])


def test_a_terminal_past_512_rows_is_trimmed_as_the_reference_trims_it() -> None:
    """600 frauds at one terminal in 10 days, then one every 5 days: the fraud run reaches
    back to the oldest kept row, so it shows when and how the terminal's rows were trimmed
    (more than 512 kept, the ones older than delay + 90 d more than half of them)."""
    rng = np.random.default_rng(3)
    burst = np.sort(rng.integers(0, 10 * DAY_MS, 600))
    t = [*burst.tolist(), *range(12 * DAY_MS, 160 * DAY_MS, 5 * DAY_MS)]
    rows = [(tt, int(rng.integers(0, 40)), 0, float(rng.integers(1, 90))) for tt in t]
    b = _batch(rows, [f"t{i}" for i in range(len(t))])
    verdicts = [[(1, 1, 0)] for _ in t]
    got, want, _ = _both(b, _labels(b, verdicts, []), 7 * DAY_MS, 1, [300, 610], None)
    np.testing.assert_array_equal(got, want)
    streak = got[:, CARD_FEATURES.index("terminal_fraud_streak_delayed")]
    assert streak.max() > 600 and streak[-1] < 100  # trimmed once the burst was old


def test_ttl_must_cover_the_longest_window() -> None:
    with pytest.raises(ValueError, match="90 days"):
        CardFeatureEngine(delay_ms=DAY_MS, ttl_ms=90 * DAY_MS)
    assert CardFeatureEngine(delay_ms=DAY_MS).ttl_ms == 91 * DAY_MS


@pytest.mark.skipif(not DATA.is_file(), reason=f"handbook data absent (expected at {DATA})")
@pytest.mark.parametrize("partitions", [1, 3])
def test_same_features_as_the_reference_on_the_handbook_data(partitions: int) -> None:
    """Every 25th terminal of the handbook (its whole six months: ≈ 70,000 rows; its customers'
    other rows are left out, so many go idle past the TTL and are evicted), with the labels
    known 7 days later: equal bit for bit. The full 1.75 M rows: ``scripts/card_exactness.py``."""
    df = load_fdh(DATA).filter(pl.col("TERMINAL_ID") % 25 == 0)
    labels = fdh_labels(df)
    b = fdh_batch(df)
    got, want, engine = _both(b, labels, 7 * DAY_MS, partitions, [30_000, 31_000], None)
    np.testing.assert_array_equal(got, want)
    frauds = got[:, CARD_FEATURES.index("terminal_frauds_90d_delayed")]
    assert (frauds > 0).sum() > 1000  # labels were read
    assert 150 < engine.entity_count()[0] < df["CUSTOMER_ID"].n_unique()  # some were evicted
