from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import (
    NEVER_S,
    POST_TX_FEATURES,
    PRE_AUTH_FEATURES,
    RECENT_COUNTERPARTIES,
    SECONDS_CAP_S,
    WINDOW_MS,
    FeatureEngine,
    Mode,
    partition_of,
)
from fraudstream.schema import KINDS, TxBatch

TRANSFER, CASH_OUT, CASH_IN, PAYMENT = (
    KINDS.index(k) for k in ("TRANSFER", "CASH_OUT", "CASH_IN", "PAYMENT")
)
MIN = 60_000
TTL_MS = 30 * 86_400_000
# Features that depend only on the account's own history and the row itself.
OWN = [n for n in PRE_AUTH_FEATURES if "counterparty" not in n and "received" not in n]

Tx = tuple[int, str, str, int, float]  # (event_time_ms, account, counterparty, kind, amount)


def batch(
    txs: Sequence[Tx],
    *,
    old_orig: Sequence[float] | None = None,
    new_orig: Sequence[float] | None = None,
    old_dest: Sequence[float] | None = None,
    new_dest: Sequence[float] | None = None,
) -> TxBatch:
    n = len(txs)

    def col(v: Sequence[float] | None, default: float) -> np.ndarray:
        return np.full(n, default) if v is None else np.asarray(v, dtype=np.float64)

    t = np.array([x[0] for x in txs], dtype=np.int64)
    return TxBatch(
        tx_id=[f"tx{i}" for i in range(n)],
        event_time_ms=t,
        account=[x[1] for x in txs],
        counterparty=[x[2] for x in txs],
        kind=np.array([x[3] for x in txs], dtype=np.int8),
        amount=np.array([x[4] for x in txs], dtype=np.float64),
        old_balance_orig=col(old_orig, 1000.0),
        new_balance_orig=col(new_orig, np.nan),
        old_balance_dest=col(old_dest, 0.0),
        new_balance_dest=col(new_dest, np.nan),
        label=np.zeros(n, dtype=np.int8),
        step=t // 3_600_000,
        flagged=np.zeros(n, dtype=np.int8),
    )


def run(
    txs: Sequence[Tx], cuts: Sequence[int] = (), *, mode: Mode = "pre_auth", **kw: Any
) -> np.ndarray:
    """Features of ``txs`` fed to one engine in batches split at ``cuts``."""
    b = batch(txs, **kw)
    engine = FeatureEngine(mode=mode)
    bounds = [0, *sorted(set(cuts)), len(b)]
    parts = [
        engine.update_and_extract(b.take(np.arange(lo, hi)))
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    return np.concatenate(parts)


def col(x: np.ndarray, name: str, names: Sequence[str] = PRE_AUTH_FEATURES) -> np.ndarray:
    return x[:, list(names).index(name)]


def since_idle(rows: list[Tx], now_ms: int, ttl_ms: int) -> list[Tx]:
    """The rows after the last idle gap of ``ttl_ms`` or more (earlier ones are forgotten)."""
    times = [p[0] for p in rows] + [now_ms]
    gaps = [k for k in range(1, len(times)) if times[k] - times[k - 1] >= ttl_ms]
    return rows[gaps[-1] :] if gaps else rows


def recompute(txs: Sequence[Tx], ttl_ms: int = TTL_MS) -> dict[str, list[float]]:
    """Independent, quadratic recomputation of the stateful features from the full history."""
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "tx_count_by_account_1h",
            "amount_sum_by_account_1h",
            "amount_vs_mean_by_account",
            "seconds_since_last_by_account",
            "new_counterparty_for_account",
            "seconds_since_account_received",
            "received_amount_ratio",
            "tx_count_to_counterparty_1h",
            "distinct_senders_to_counterparty_1h",
        )
    }
    for i, (t, a, c, _, x) in enumerate(txs):
        before = txs[:i]
        mine = since_idle([p for p in before if p[1] == a], t, ttl_ms)
        in_window = [p for p in mine if p[0] > t - WINDOW_MS]
        out["tx_count_by_account_1h"].append(len(in_window))
        out["amount_sum_by_account_1h"].append(sum(p[4] for p in in_window))
        mean = float(np.mean([p[4] for p in mine])) if mine else 0.0
        out["amount_vs_mean_by_account"].append(x / mean if mean >= 0.01 else 0.0)
        out["seconds_since_last_by_account"].append(
            min((t - mine[-1][0]) / 1000, SECONDS_CAP_S) if mine else NEVER_S
        )
        out["new_counterparty_for_account"].append(float(c not in {p[2] for p in mine}))
        got = [p for p in before if p[2] == a and p[3] in (TRANSFER, CASH_IN) and t - p[0] < ttl_ms]
        out["seconds_since_account_received"].append(
            min((t - got[-1][0]) / 1000, SECONDS_CAP_S) if got else NEVER_S
        )
        out["received_amount_ratio"].append(x / got[-1][4] if got and got[-1][4] >= 0.01 else 0.0)
        to_c = [p for p in before if p[2] == c and p[0] > t - WINDOW_MS]
        out["tx_count_to_counterparty_1h"].append(len(to_c))
        out["distinct_senders_to_counterparty_1h"].append(len({p[1] for p in to_c}))
    return out


NAMES = ["A", "B", "C", "D", "M1", "M2"]


def gaps() -> st.SearchStrategy[int]:
    """Mostly minutes apart, often on exact window boundaries, now and then days apart."""
    return st.integers(0, 20).flatmap(
        lambda k: (
            st.just(8 * 86_400_000)
            if k == 0
            else st.integers(0, 6).map(lambda m: m * 5 * MIN)
            if k <= 10
            else st.integers(0, 10 * MIN)
        )
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Tx], list[int]]:
    n = draw(st.integers(1, 60))
    times = np.cumsum(draw(st.lists(gaps(), min_size=n, max_size=n))).tolist()
    txs = [
        (
            int(t),
            draw(st.sampled_from(NAMES[:4])),
            draw(st.sampled_from(NAMES)),
            draw(st.sampled_from([TRANSFER, CASH_OUT, CASH_IN, PAYMENT])),
            draw(st.floats(0, 1e6, allow_nan=False).map(lambda v: round(v, 2))),
        )
        for t in times
    ]
    cuts = draw(st.lists(st.integers(0, n), max_size=4))
    return txs, cuts


@settings(max_examples=80, deadline=None)
@given(histories())
def test_incremental_features_match_batch_recomputation(case: tuple[list[Tx], list[int]]) -> None:
    txs, cuts = case
    x = run(txs, cuts)
    for name, expected in recompute(txs).items():
        np.testing.assert_allclose(col(x, name), expected, rtol=1e-5, atol=1e-2, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(
    histories(),
    st.lists(
        st.tuples(
            st.integers(0, 10**8),
            st.sampled_from(["X", "Y"]),
            st.sampled_from(NAMES + ["Z"]),
            st.sampled_from([TRANSFER, PAYMENT]),
            st.floats(0, 1e5),
        ),
        max_size=30,
    ),
)
def test_other_accounts_never_change_own_features(
    case: tuple[list[Tx], list[int]], others: list[Tx]
) -> None:
    txs, _ = case
    # Others send to the same counterparties (but never to A-D): the own features must not move.
    merged = sorted(
        [(t, 0, i) for i, (t, *_) in enumerate(txs)]
        + [(t, 1, i) for i, (t, *_) in enumerate(others)]
    )
    mixed = [txs[i] if src == 0 else others[i] for _, src, i in merged]
    mixed = [
        m if m[1] not in "XY" or m[2] not in NAMES[:4] else (*m[:2], "Z", *m[3:]) for m in mixed
    ]
    alone = run(txs)
    together = run(mixed)
    mine = [k for k, m in enumerate(mixed) if m[1] not in ("X", "Y")]
    for name in OWN + ["seconds_since_account_received", "received_amount_ratio"]:
        np.testing.assert_array_equal(col(together, name)[mine], col(alone, name), err_msg=name)


class Poison:
    """Stands in for a column that must never be read."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"read a forbidden column ({name})")

    def __array__(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("read a forbidden column")

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError("read a forbidden column")


def test_pre_auth_never_reads_new_balances_or_labels() -> None:
    txs = [(0, "A", "B", TRANSFER, 100.0), (MIN, "B", "C", CASH_OUT, 90.0)]
    b = batch(txs)
    b.new_balance_orig = Poison()  # type: ignore[assignment]
    b.new_balance_dest = Poison()  # type: ignore[assignment]
    b.label = Poison()  # type: ignore[assignment]
    x = FeatureEngine(mode="pre_auth").update_and_extract(b)
    assert x.shape == (2, len(PRE_AUTH_FEATURES))
    assert not any("error" in n or "new_balance" in n for n in PRE_AUTH_FEATURES)


def test_post_tx_balance_errors_with_missing_indicators() -> None:
    txs = [(0, "A", "B", TRANSFER, 100.0), (MIN, "A", "C", TRANSFER, 50.0)]
    x = run(
        txs,
        mode="post_tx",
        old_orig=[500, 400],
        new_orig=[400, np.nan],
        old_dest=[10, 0],
        new_dest=[110, 0],
    )
    assert x.shape == (2, len(POST_TX_FEATURES))
    get = lambda n: col(x, n, POST_TX_FEATURES).tolist()  # noqa: E731
    assert get("error_balance_orig") == [0.0, 0.0]
    assert get("error_balance_orig_missing") == [0.0, 1.0]
    assert get("error_balance_dest") == [0.0, 50.0]
    assert get("error_balance_dest_missing") == [0.0, 0.0]


def test_row_features_and_names() -> None:
    txs = [(5 * 3_600_000 + 1, "A", "B", CASH_OUT, 990.0)]
    x = run(txs, old_orig=[1000.0], old_dest=[np.nan])
    row = dict(zip(PRE_AUTH_FEATURES, x[0].tolist(), strict=True))
    assert row["amount"] == 990.0 and row["kind_cash_out"] == 1.0 and row["kind_transfer"] == 0.0
    assert row["log_amount"] == pytest.approx(math.log1p(990.0))
    assert row["drains_balance"] == 1.0
    assert row["amount_to_old_balance_orig"] == pytest.approx(990 / 1001)
    assert row["old_balance_dest_missing"] == 1.0 and row["old_balance_dest"] == 0.0
    assert row["hour_of_day"] == 5.0
    assert row["seconds_since_last_by_account"] == NEVER_S
    assert row["new_counterparty_for_account"] == 1.0
    assert not np.isnan(x).any()
    assert FeatureEngine().feature_names == PRE_AUTH_FEATURES
    assert FeatureEngine().update_and_extract(batch([])).shape == (0, len(PRE_AUTH_FEATURES))


def test_mule_cash_out_sees_the_transfer_it_received() -> None:
    txs = [(0, "A", "MULE", TRANSFER, 5000.0), (2 * MIN, "MULE", "SHOP", CASH_OUT, 5000.0)]
    x = run(txs)
    assert col(x, "seconds_since_account_received")[1] == 120.0
    assert col(x, "received_amount_ratio")[1] == 1.0


def test_deterministic_and_independent_of_batching() -> None:
    rng = np.random.default_rng(7)
    txs = [
        (
            int(t),
            f"A{rng.integers(30)}",
            f"C{rng.integers(40)}",
            int(rng.integers(5)),
            float(rng.random() * 1e4),
        )
        for t in np.sort(rng.integers(0, 10**8, 3000))
    ]
    one = run(txs)
    np.testing.assert_array_equal(one, run(txs))
    np.testing.assert_array_equal(one, run(txs, cuts=list(range(0, 3000, 7))))


def test_idle_entities_are_evicted_and_forgotten() -> None:
    engine = FeatureEngine(ttl_ms=10 * MIN)
    engine.update_and_extract(batch([(0, "A", "B", TRANSFER, 1.0), (MIN, "C", "D", PAYMENT, 1.0)]))
    assert engine.entity_count() == 4
    x = engine.update_and_extract(batch([(20 * MIN, "A", "B", TRANSFER, 1.0)]))
    assert engine.entity_count() == 2  # C and D swept; A and B restarted
    assert col(x, "seconds_since_last_by_account")[0] == NEVER_S
    assert col(x, "new_counterparty_for_account")[0] == 1.0


def test_a_late_row_reads_the_same_state_whatever_the_batches_with_a_sweep_lag() -> None:
    """A row late by at most ``sweep_lag_ms`` (the guard's lateness) gets the same features
    whether the sweep ran before it or not: the sweep keeps state that recent."""
    rows = [
        (0, "A", "B", TRANSFER, 5.0),
        (12 * MIN, "C", "D", PAYMENT, 1.0),  # the newest row: the sweep cutoff moves to 2 min
        (9 * MIN, "A", "B", TRANSFER, 7.0),  # 3 min late; A idle 9 min (< the 10 min TTL)
    ]

    def late_row(batches: list[list[Tx]], lag_ms: int) -> np.ndarray:
        engine = FeatureEngine(ttl_ms=10 * MIN)
        engine.sweep_lag_ms = lag_ms
        return [engine.update_and_extract(batch(b)) for b in batches][-1][-1]

    together = late_row([rows], 0)
    assert together[list(PRE_AUTH_FEATURES).index("seconds_since_last_by_account")] == 9 * 60
    np.testing.assert_array_equal(late_row([rows[:1], rows[1:2], rows[2:]], 3 * MIN), together)
    # without the lag, the sweep after the second row forgets A: the late row differs
    assert not np.array_equal(late_row([rows[:1], rows[1:2], rows[2:]], 0), together)


def test_recent_counterparties_are_capped_least_recently_used() -> None:
    cps = [f"C{i}" for i in range(RECENT_COUNTERPARTIES + 1)]
    txs = [(i * MIN, "A", c, PAYMENT, 1.0) for i, c in enumerate(cps)]
    # C0 is used again after C1, so C1 (least recently used) is forgotten when C16 arrives.
    txs.append((int(1.5 * MIN), "A", "C0", PAYMENT, 1.0))
    txs += [(100 * MIN, "A", "C0", PAYMENT, 1.0), (101 * MIN, "A", "C1", PAYMENT, 1.0)]
    new = col(run(sorted(txs)), "new_counterparty_for_account").tolist()
    assert new[-2:] == [0.0, 1.0]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        FeatureEngine(mode="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl_ms"):
        FeatureEngine(ttl_ms=0)


def test_state_is_kept_per_partition() -> None:
    """A partition's rows see only its own state, so it can move to another process unchanged."""
    rng = np.random.default_rng(4)
    txs = [
        (int(t), f"C{rng.integers(40)}", f"C{rng.integers(40)}", int(rng.integers(5)), 10.0 + i)
        for i, t in enumerate(np.sort(rng.integers(0, 10**7, 2000)))
    ]
    b = batch(txs)
    parts = partition_of(b.account, 4)
    together = FeatureEngine(partitions=4).update_and_extract(b)
    np.testing.assert_array_equal(together, FeatureEngine().update_and_extract(b, parts))
    for p in range(4):
        rows = np.flatnonzero(parts == p)
        alone = FeatureEngine().update_and_extract(b.take(rows))  # one partition, own process
        np.testing.assert_array_equal(together[rows], alone)
    assert not np.array_equal(together, FeatureEngine().update_and_extract(b))  # shared state


def test_dropped_partition_is_forgotten() -> None:
    b = batch([(0, "A", "B", TRANSFER, 5.0), (MIN, "A", "B", TRANSFER, 5.0)])
    engine = FeatureEngine()
    engine.update_and_extract(b.take(np.array([0])), np.array([3], dtype=np.int32))
    assert engine.partitions_held() == [3]
    engine.drop_partitions([3])
    assert engine.partitions_held() == [] and engine.entity_count() == 0
    x = engine.update_and_extract(b.take(np.array([1])), np.array([3], dtype=np.int32))
    assert col(x, "new_counterparty_for_account")[0] == 1.0


def test_sweeps_and_growth_never_change_features() -> None:
    """Many small batches (frequent sweeps compacting the columns, tables grown from empty) give
    the very features of one batch over the same rows, and the state stays bounded."""
    from fraudstream.simulate import PaySimSimulator

    sim = PaySimSimulator(accounts=3_000, seed=11, rate_per_s=20.0)
    history = sim.history(40_000)  # about 33 event-time minutes per 40,000 rows at 20 tx/s
    history.event_time_ms = history.event_time_ms * 6  # stretch to about 3 h 20 min
    whole = FeatureEngine(ttl_ms=20 * MIN).update_and_extract(history)
    chunked = FeatureEngine(ttl_ms=20 * MIN)
    parts = [
        chunked.update_and_extract(history.take(np.arange(lo, min(lo + 700, len(history)))))
        for lo in range(0, len(history), 700)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert 0 < chunked.entity_count() < 2 * 3_000


def test_warm_up_compiles_every_kernel_the_state_calls() -> None:
    """A kernel first needed mid-run (a hash table's first growth) would be compiled, or loaded
    from numba's cache, inside a batch: 0.24-0.35 s of stall. In a fresh interpreter, after
    ``warm_up`` alone, every kernel ``PartitionState`` calls from Python has a signature."""
    code = (
        "from fraudstream.features import FeatureEngine, _state\n"
        "FeatureEngine(mode='pre_auth').warm_up()\n"
        "kernels = (_state._update, _state._sweep, _state._index, _state._reindex_pairs)\n"
        "print([k.__name__ for k in kernels if not k.signatures])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
