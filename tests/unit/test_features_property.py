"""The PaySim FeatureEngine (public API only) against a brute-force batch recomputation.

Random histories (a few accounts that also receive, a few hours, equal timestamps, missing
balances) are fed in random chunks; every feature must equal its definition recomputed from the
whole history with plain numpy over strictly earlier rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import NEVER_S, RECENT_COUNTERPARTIES, SECONDS_CAP_S, FeatureEngine
from fraudstream.schema import KINDS, TxBatch

HOUR_MS = 3_600_000
F64 = npt.NDArray[np.float64]


def _ratio(num: float, den: float) -> float:
    return num / den if den >= 0.01 else 0.0


def _since(now: int, then: int | None) -> float:
    return NEVER_S if then is None else min((now - then) / 1000.0, SECONDS_CAP_S)


def brute_force(b: TxBatch, mode: str) -> dict[str, F64]:
    """Every feature of every row from its definition (rows in order, all earlier rows)."""
    n = len(b)
    t, acc, cp = b.event_time_ms, np.array(b.account), np.array(b.counterparty)
    receiving = np.isin(b.kind, (KINDS.index("TRANSFER"), KINDS.index("CASH_IN")))
    out: dict[str, F64] = {}

    def col(name: str, values: list[float] | F64) -> None:
        out[name] = np.asarray(values, dtype=np.float64)

    old_o, old_d = b.old_balance_orig, b.old_balance_dest
    col("amount", b.amount)
    col("log_amount", np.log1p(np.maximum(b.amount, 0)))
    for code, kind in enumerate(KINDS):
        col(f"kind_{kind.lower()}", b.kind == code)
    col("old_balance_orig", np.nan_to_num(old_o))
    col("old_balance_orig_missing", np.isnan(old_o))
    col("amount_to_old_balance_orig", b.amount / (np.nan_to_num(old_o) + 1.0))
    col("drains_balance", ~np.isnan(old_o) & (b.amount >= 0.99 * np.nan_to_num(old_o)))
    col("old_balance_dest", np.nan_to_num(old_d))
    col("old_balance_dest_missing", np.isnan(old_d))
    col("hour_of_day", t // HOUR_MS % 24)
    rows: dict[str, list[float]] = {k: [] for k in _STATE}
    for i in range(n):
        before = np.arange(n) < i
        mine = before & (acc == acc[i])
        win = mine & (t > t[i] - HOUR_MS)
        rows["tx_count_by_account_1h"].append(win.sum())
        rows["amount_sum_by_account_1h"].append(b.amount[win].sum())
        mean = b.amount[mine].mean() if mine.any() else 0.0
        rows["amount_vs_mean_by_account"].append(_ratio(b.amount[i], mean))
        last = int(t[mine][-1]) if mine.any() else None
        rows["seconds_since_last_by_account"].append(_since(int(t[i]), last))
        used: dict[str, None] = {}
        for c in cp[mine]:  # least recently used first
            used.pop(c, None)
            used[c] = None
        recent = list(used)[-RECENT_COUNTERPARTIES:]
        rows["new_counterparty_for_account"].append(float(cp[i] not in recent))
        got = np.flatnonzero(before & (cp == acc[i]) & receiving)
        got_t = int(t[got[-1]]) if len(got) else None
        rows["seconds_since_account_received"].append(_since(int(t[i]), got_t))
        got_amount = b.amount[got[-1]] if len(got) else 0.0
        rows["received_amount_ratio"].append(_ratio(b.amount[i], got_amount))
        into = before & (cp == cp[i]) & (t > t[i] - HOUR_MS)
        rows["tx_count_to_counterparty_1h"].append(into.sum())
        rows["distinct_senders_to_counterparty_1h"].append(len(set(acc[into])))
    for k, v in rows.items():
        col(k, v)
    if mode == "post_tx":
        err_o = old_o - b.amount - b.new_balance_orig
        err_d = old_d + b.amount - b.new_balance_dest
        col("error_balance_orig", np.nan_to_num(err_o))
        col("error_balance_orig_missing", np.isnan(err_o))
        col("error_balance_dest", np.nan_to_num(err_d))
        col("error_balance_dest_missing", np.isnan(err_d))
    return out


_STATE = (
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

_balance = st.one_of(st.just(float("nan")), st.floats(0.0, 1e5, allow_nan=False))
_rows = st.lists(
    st.tuples(
        st.integers(0, 36),  # 10-minute slot of a 6-hour history: equal times, exact hours
        st.integers(0, 5),  # account A0..A5
        st.integers(0, 25),  # counterparty: A0..A5 (accounts receive too) or M6..M25
        st.integers(0, len(KINDS) - 1),
        st.floats(0.0, 5000.0, allow_nan=False),
        _balance,
        _balance,
        _balance,
        _balance,
    ),
    min_size=1,
    max_size=80,
)


def _batch(rows: list[tuple[int, int, int, int, float, float, float, float, float]]) -> TxBatch:
    n = len(rows)
    col = list(zip(*rows, strict=True))
    return TxBatch(
        tx_id=[str(i) for i in range(n)],
        event_time_ms=np.array(col[0], dtype=np.int64) * 600_000 + 5 * 86_400_000,
        account=[f"A{a}" for a in col[1]],
        counterparty=[f"A{c}" if c < 6 else f"M{c}" for c in col[2]],
        kind=np.array(col[3], dtype=np.int8),
        amount=np.array(col[4], dtype=np.float64),
        old_balance_orig=np.array(col[5], dtype=np.float64),
        new_balance_orig=np.array(col[6], dtype=np.float64),
        old_balance_dest=np.array(col[7], dtype=np.float64),
        new_balance_dest=np.array(col[8], dtype=np.float64),
        label=np.zeros(n, dtype=np.int8),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )


@settings(max_examples=80, deadline=None)
@given(
    rows=_rows,
    mode=st.sampled_from(["pre_auth", "post_tx"]),
    cuts=st.lists(st.integers(0, 80), max_size=4),
)
def test_engine_matches_brute_force(
    rows: list[tuple[int, int, int, int, float, float, float, float, float]],
    mode: str,
    cuts: list[int],
) -> None:
    rows.sort(key=lambda r: r[0])
    batch = _batch(rows)
    engine = FeatureEngine(mode=mode)  # type: ignore[arg-type]
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    got = np.concatenate(
        [
            engine.update_and_extract(batch.take(np.arange(lo, hi)))
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
    )
    want = brute_force(batch, mode)
    assert set(engine.feature_names) == set(want)
    for j, name in enumerate(engine.feature_names):
        np.testing.assert_allclose(
            got[:, j], want[name].astype(np.float32), rtol=1e-5, atol=1e-3, err_msg=name
        )
