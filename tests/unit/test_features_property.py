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

from fraudstream.features import (
    LABEL_FEATURES,
    NEVER_S,
    RECENT_COUNTERPARTIES,
    SECONDS_CAP_S,
    FeatureEngine,
    LabelBook,
)
from fraudstream.schema import KINDS, SOURCE_PRECEDENCE, LabelMessage, TxBatch

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
F64 = npt.NDArray[np.float64]


def _ratio(num: float, den: float) -> float:
    return num / den if den >= 0.01 else 0.0


def _since(now: int, then: int | None) -> float:
    return NEVER_S if then is None else min((now - then) / 1000.0, SECONDS_CAP_S)


#: (row, verdict, minutes from the row's time, source)
Label = tuple[int, int, int, str]


def _in_force(verdicts: list[tuple[int, str, int]], t: int) -> tuple[int, int] | None:
    """The verdict in force at ``t`` and since when it has been (``None``: no verdict yet).

    ``verdicts``: (time, source, verdict); the same verdict from the same source counts from its
    earliest time; at a time the verdict of the highest (precedence, verdict) wins.
    """
    earliest: dict[tuple[str, int], int] = {}
    for at, src, v in verdicts:
        earliest[(src, v)] = min(at, earliest.get((src, v), at))
    times = sorted({at for at in earliest.values() if at <= t})

    def status(when: int) -> int:
        here = [(SOURCE_PRECEDENCE[src], v) for (src, v), at in earliest.items() if at == when]
        return max(here)[1]

    current: tuple[int, int] | None = None
    for when in times:
        v = status(when)
        if current is None or current[0] != v:
            current = (v, when)
    return current


def brute_labels(b: TxBatch, labels: list[Label]) -> dict[str, F64]:
    """The label features from their definition, over every label of every row."""
    n = len(b)
    t = b.event_time_ms
    by_row: dict[int, list[tuple[int, str, int]]] = {}
    for row, v, minutes, src in labels:
        by_row.setdefault(row, []).append((max(int(t[row]) + minutes * 60_000, 0), src, v))
    out = {k: np.zeros(n) for k in LABEL_FEATURES}
    for i in range(n):
        now = int(t[i])

        def count(role: str, entity: str, window_ms: int, verdict: int = 1, now: int = now) -> int:
            hits = 0
            for j, vs in by_row.items():
                party = b.counterparty[j] if role == "to" else b.account[j]
                if party != entity:
                    continue
                state = _in_force(vs, now)
                hits += state is not None and state[0] == verdict and state[1] > now - window_ms
            return hits

        def recent(role: str, entity: str, now: int = now) -> int:
            """Frauds in force at ``now`` whose transaction time is in ``(now - 6 h, now]``."""
            hits = 0
            for j, vs in by_row.items():
                party = b.counterparty[j] if role == "to" else b.account[j]
                state = _in_force(vs, now)
                fresh = now - 6 * HOUR_MS < int(t[j]) <= now
                hits += party == entity and fresh and state is not None and state[0] == 1
            return hits

        cp, acc = b.counterparty[i], b.account[i]
        out["confirmed_frauds_to_counterparty_1d"][i] = count("to", cp, DAY_MS)
        out["confirmed_frauds_to_counterparty_7d"][i] = count("to", cp, 7 * DAY_MS)
        f30 = count("to", cp, 30 * DAY_MS)
        out["confirmed_frauds_to_counterparty_30d"][i] = f30
        g30 = count("to", cp, 30 * DAY_MS, verdict=0)
        out["counterparty_fraud_share_30d"][i] = f30 / (f30 + g30) if f30 + g30 else 0.0
        out["confirmed_frauds_by_account_30d"][i] = count("by", acc, 30 * DAY_MS)
        out["confirmed_frauds_to_account_30d"][i] = count("to", acc, 30 * DAY_MS)
        out["confirmed_frauds_to_counterparty_tx_6h"][i] = recent("to", cp)
        out["confirmed_frauds_by_account_tx_6h"][i] = recent("by", acc)
    return out


def _label_book(b: TxBatch, labels: list[Label]) -> LabelBook:
    book = LabelBook()
    book.add(
        LabelMessage(
            b.tx_id[row],
            v,  # type: ignore[arg-type]
            max(int(b.event_time_ms[row]) + minutes * 60_000, 0),
            account=b.account[row],
            counterparty=b.counterparty[row],
            tx_time_ms=int(b.event_time_ms[row]),
            source=src,  # type: ignore[arg-type]
        )
        for row, v, minutes, src in labels
    )
    return book


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
    labels=st.lists(
        st.tuples(
            st.integers(0, 7),  # a few rows, so verdicts meet (contradictions, duplicates)
            st.integers(0, 1),
            st.sampled_from([-40 * 1440, -29 * 1440, -6 * 1440, -1440, -60, 0, 30, 60, 300]),
            st.sampled_from(["analyst", "chargeback"]),
        ),
        max_size=12,
    ),
)
def test_engine_matches_brute_force(
    rows: list[tuple[int, int, int, int, float, float, float, float, float]],
    mode: str,
    cuts: list[int],
    labels: list[Label],
) -> None:
    rows.sort(key=lambda r: r[0])
    batch = _batch(rows)
    labels = [lab for lab in labels if lab[0] < len(rows)]
    engine = FeatureEngine(mode=mode, labels=_label_book(batch, labels))  # type: ignore[arg-type]
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    got = np.concatenate(
        [
            engine.update_and_extract(batch.take(np.arange(lo, hi)))
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
    )
    want = brute_force(batch, mode) | brute_labels(batch, labels)
    assert set(engine.feature_names) == set(want)
    for j, name in enumerate(engine.feature_names):
        np.testing.assert_allclose(
            got[:, j], want[name].astype(np.float32), rtol=1e-5, atol=1e-3, err_msg=name
        )


def test_recent_frauds_count_transactions_of_the_last_6_hours_known_by_now() -> None:
    """A fraud of A0 at M6 (slot 0, confirmed 30 min later) counts from its label time until
    its transaction is 6 hours old, for M6 as recipient and A0 as sender."""
    # (10-minute slot, account, counterparty): M6 is counterparty 6, M7 counterparty 7
    slots = [(0, 0, 6), (1, 1, 6), (3, 2, 6), (35, 0, 7), (35, 3, 6), (36, 0, 7), (36, 4, 6)]
    batch = _batch([(s, a, c, 0, 10.0, 100.0, 90.0, 0.0, 0.0) for s, a, c in slots])
    labels: list[Label] = [(0, 1, 30, "analyst")]
    engine = FeatureEngine(labels=_label_book(batch, labels))
    x = engine.update_and_extract(batch)
    names = list(engine.feature_names)
    to_cp = x[:, names.index("confirmed_frauds_to_counterparty_tx_6h")].tolist()
    by_acc = x[:, names.index("confirmed_frauds_by_account_tx_6h")].tolist()
    assert to_cp == [0, 0, 1, 0, 1, 0, 0]  # not yet known at slots 0-1; 6 h old at slot 36
    assert by_acc == [0, 0, 0, 1, 0, 0, 0]  # A0's own fraud, until it is 6 h old
    want = brute_labels(batch, labels)
    assert want["confirmed_frauds_to_counterparty_tx_6h"].tolist() == to_cp
    assert want["confirmed_frauds_by_account_tx_6h"].tolist() == by_acc
