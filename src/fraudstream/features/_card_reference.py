"""The card engine as it was before the columnar one: per-entity Python objects, one Python loop.

Kept only as the reference the columnar :class:`~fraudstream.features.CardFeatureEngine` is
tested against (``tests/unit/test_card_columnar.py``, ``scripts/card_exactness.py``) and benched
against (``fraudstream bench --format card --reference``). It never forgets an entity.
Not exported; nothing in the library uses it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Final

import numpy as np
import numpy.typing as npt

from fraudstream.features._card import (
    _HOUR_MS,
    _NEVER_D,
    _NEVER_S,
    _STATE_WIDTH,
    _WINDOWS_D,
    CARD_FEATURES,
    DAY_MS,
    HIGH_AMOUNT_RATIO,
    assemble,
)
from fraudstream.features._engine import _groups, partition_of
from fraudstream.features._labelbook import LabelBook
from fraudstream.schema import TxBatch

__all__ = ["CardReferenceEngine"]


class _Customer:
    __slots__ = ("amounts", "cum", "cum2", "high", "terminals", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.amounts: list[float] = []
        self.cum: list[float] = [0.0]
        self.cum2: list[float] = [0.0]
        self.high: list[int] = [0]
        self.terminals: dict[str, int] = {}


class _Terminal:
    """The partition's transactions at one terminal: times and ids, in event-time order."""

    __slots__ = ("ids", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.ids: list[str] = []


def _amount_profile(cu: _Customer, since_ms: int, x: float) -> tuple[float, float, float, int]:
    """Max, ``x`` / median and ``x``'s z-score over the customer's rows after ``since_ms``."""
    k = bisect_right(cu.times, since_ms)
    prev = cu.amounts[k:]
    n = len(prev)
    if not n:
        return 0.0, 0.0, 0.0, 0
    srt = sorted(prev)
    med = (srt[(n - 1) // 2] + srt[n // 2]) / 2.0
    cc, cq = cu.cum, cu.cum2
    mean = (cc[-1] - cc[k]) / n
    var = max((cq[-1] - cq[k]) / n - mean * mean, 0.0)
    zscore = (x - mean) / max(var**0.5, 1.0) if n >= 2 else 0.0
    return srt[-1], x / med if med >= 0.01 else 0.0, zscore, n


def _partition_filter(
    book: LabelBook, partition: int, partitions: int
) -> Callable[[str], bool] | None:
    """Keeps transaction ids of ``partition`` (``None``: one partition, keep all)."""
    if partitions == 1:
        return None
    crc = book.partition_crc
    return lambda i: crc(i) % partitions == partition


def _terminal_run(te: _Terminal, hi: int, book: LabelBook, t: int) -> tuple[int, float]:
    """Fraud run (known at ``t``) ending at the terminal's row ``hi - 1``: its length and the
    days since its start (``_NEVER_D`` when none)."""
    k = hi
    ids = te.ids
    while k > 0 and book.fraud_at(ids[k - 1], t):
        k -= 1
    streak = hi - k
    return streak, (t - te.times[k]) / DAY_MS if streak else _NEVER_D


class CardReferenceEngine:
    """Incremental card features, state kept per partition as :class:`FeatureEngine` keeps it.

    A row reads and updates the state of its partition only, so a partition's state can move
    to another detector and be rebuilt there exactly; terminals' state is therefore per
    partition too (a terminal's transactions from customers of other partitions are not seen).
    Offline, without ``partition``, rows must come sorted by event time and are partitioned by
    customer as the producer's partitioner does (one partition by default: the handbook's
    protocol). A stream's rows are taken in event-time order within each partition of a batch.

    >>> CardReferenceEngine().feature_names[:3]
    ('TX_AMOUNT', 'TX_DURING_WEEKEND', 'TX_DURING_NIGHT')
    """

    mode: Final = "card"

    def __init__(
        self,
        *,
        delay_ms: int = 7 * DAY_MS,
        partitions: int = 1,
        labels: LabelBook | None = None,
    ) -> None:
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.delay_ms = delay_ms
        self.partitions = partitions
        #: the labels known so far (shared with whoever reads them: the detector, a replay)
        self.labels = labels if labels is not None else LabelBook()
        self._tables: dict[int, tuple[dict[str, _Customer], dict[str, _Terminal]]] = {}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names of :meth:`update_and_extract`'s output."""
        return CARD_FEATURES

    def warm_up(self) -> None:
        """Nothing to compile: the card state is plain Python."""

    def partitions_held(self) -> list[int]:
        """The partitions whose state this engine holds, ascending."""
        return sorted(self._tables)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the state of ``partitions`` (their new owner restores it)."""
        for p in partitions:
            self._tables.pop(p, None)

    def update_and_extract(
        self, batch: TxBatch, partition: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.float32]:
        """Features of every row of ``batch``; then the rows are folded into the state.

        Label features read :attr:`labels` at each row's event time; ``batch.label`` is never
        read.
        """
        n = len(batch)
        x = np.empty((n, len(CARD_FEATURES)), dtype=np.float32)
        if n == 0:
            return x
        t = batch.event_time_ms
        if partition is None:
            if np.any(np.diff(t) < 0):
                raise ValueError("CardFeatureEngine needs rows sorted by event_time_ms")
            partition = partition_of(batch.account, self.partitions)
        order = np.argsort(t, kind="stable")  # the identity for sorted rows
        s = np.empty((n, _STATE_WIDTH), dtype=np.float64)
        for p, rows in _groups(partition[order]):
            tables = self._tables.get(p)
            if tables is None:
                tables = self._tables[p] = ({}, {})
            idx = order[rows].tolist()
            values = self._loop(
                *tables,
                p,
                t[idx].tolist(),
                [batch.tx_id[i] for i in idx],
                [batch.account[i] for i in idx],
                [batch.counterparty[i] for i in idx],
                batch.amount[idx].tolist(),
            )
            s[idx] = np.array(values, dtype=np.float64).reshape(len(idx), -1)
        return assemble(batch, s)

    def _loop(
        self,
        cust_tab: dict[str, _Customer],
        term_tab: dict[str, _Terminal],
        partition: int,
        times: list[int],
        tx_ids: list[str],
        customers: list[str],
        terminals: list[str],
        amounts: list[float],
    ) -> list[float]:
        """Per row: the stateful columns (12 handbook + 15 of ours), then fold the row in."""
        out: list[float] = []
        put = out.extend
        delay = self.delay_ms
        wins = tuple(w * DAY_MS for w in _WINDOWS_D)
        long_ms = 90 * DAY_MS
        two_weeks = 14 * DAY_MS
        high_ratio = HIGH_AMOUNT_RATIO
        book = self.labels
        fraud_times = book.fraud_times
        mine = _partition_filter(book, partition, self.partitions)
        for t, i, c, m, x in zip(times, tx_ids, customers, terminals, amounts, strict=True):
            cu = cust_tab.get(c)
            if cu is None:
                cu = cust_tab[c] = _Customer()
            te = term_tab.get(m)
            if te is None:
                te = term_tab[m] = _Terminal()
            ct, cc, cq, ch = cu.times, cu.cum, cu.cum2, cu.high
            last = ct[-1] if ct else None
            prev_max, vs_median, zscore, n_prev = _amount_profile(cu, t - wins[2], x)
            high_14d = ch[-1] - ch[bisect_right(ct, t - two_weeks)]
            ct.append(t)
            cu.amounts.append(x)
            cc.append(cc[-1] + x)
            cq.append(cq[-1] + x * x)
            ch.append(ch[-1] + (n_prev >= 3 and vs_median > high_ratio))
            row: list[float] = []
            n_all = len(ct)
            for w in wins:
                k = bisect_right(ct, t - w)
                row.append(n_all - k)
                row.append((cc[-1] - cc[k]) / (n_all - k))
            # the terminal's frauds (known at t) among its transactions before t - delay
            f_times = fraud_times("counterparty", m, t - delay - long_ms, t - delay, t, mine)
            tt = te.times
            hi = bisect_left(tt, t - delay)
            for w in wins:
                lo = bisect_left(tt, t - delay - w)
                nb = hi - lo
                row.append(nb)
                frauds = len(f_times) - bisect_left(f_times, t - delay - w)
                row.append(frauds / nb if nb else 0.0)
            lo = bisect_left(tt, t - delay - long_ms)
            nb = hi - lo
            seen = cu.terminals.get(m)
            five = min(hi, 5)
            streak, since_start = _terminal_run(te, hi, book, t)
            since_fraud = min((t - f_times[-1]) / DAY_MS, _NEVER_D) if f_times else _NEVER_D
            last5 = sum(1 for j in te.ids[hi - five : hi] if book.fraud_at(j, t)) if five else 0
            c_frauds = fraud_times("account", c, t - delay - wins[2], t - delay, t, mine)
            row.extend(
                (
                    prev_max,
                    _NEVER_S if last is None else min((t - last) / 1000.0, _NEVER_S),
                    n_all - bisect_right(ct, t - _HOUR_MS),
                    float(seen is None or seen <= t - wins[2]),
                    len(tt) - bisect_right(tt, t - wins[0]),
                    len(f_times),
                    len(f_times) / nb if nb else 0.0,
                    len(c_frauds),
                    vs_median,
                    zscore,
                    high_14d,
                    streak,
                    since_start,
                    since_fraud,
                    last5 / five if five else 0.0,
                )
            )
            put(row)
            cu.terminals[m] = t
            tt.append(t)
            te.ids.append(i)
            if len(ct) > 256:
                cut = t - wins[2]
                k = bisect_left(ct, cut)
                if 2 * k > len(ct):
                    del ct[:k], cc[:k], cq[:k], ch[:k], cu.amounts[:k]
            if len(tt) > 512:
                k = bisect_left(tt, t - delay - long_ms)
                if k > 64 and 2 * k > len(tt):
                    del tt[:k], te.ids[:k]
        return out
