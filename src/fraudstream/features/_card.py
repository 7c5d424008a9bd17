"""Card-format features (Fraud Detection Handbook): per-customer and per-terminal state.

The handbook's 15 features (:data:`FDH_FEATURES`) are reproduced exactly; :data:`CARD_FEATURES`
adds our own. Customer windows are ``(t - w, t]`` (the current transaction included); terminal
windows are ``[t - delay - w, t - delay)``. Input is a :class:`~fraudstream.schema.TxBatch`
(account = customer, counterparty = terminal) in event-time order.

Frauds come from a :class:`~fraudstream.features.LabelBook`, never from the transactions: a
terminal's (or customer's) fraud at event time *t* is a transaction of the window labelled fraud
by the labels known at *t*. With the handbook's labels (known 7 days after the transaction,
``delay_ms`` = 7 days) that is exactly the handbook's delayed fraud count.

The state is columnar and compiled (:mod:`~fraudstream.features._card_state`); its features
equal those of the former per-object engine, kept as ``_card_reference`` for the tests (see
``docs/benchmarks.md``, "Card engine", for the exactness checks and the one documented gap).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraudstream.features._card_extras import CardExtras
from fraudstream.features._card_labels import gather_frauds
from fraudstream.features._card_state import STATE_WIDTH, CardState
from fraudstream.features._engine import _groups, partition_of
from fraudstream.features._labelbook import LabelBook
from fraudstream.features._state import SavesPartitions, fingerprint, keys_of
from fraudstream.schema import TxBatch

__all__ = ["CARD_FEATURES", "DAY_MS", "FDH_FEATURES", "CardFeatureEngine"]

DAY_MS: Final = 86_400_000
_WINDOWS_D: Final = (1, 7, 30)
_HOUR_MS: Final = 3_600_000
#: ``seconds_since_last_tx_by_customer`` when there is no earlier transaction (30 days).
_NEVER_S: Final = 30 * 86_400.0
#: Days since a terminal's (delayed) fraud when there is none in its state (90 days).
_NEVER_D: Final = 90.0

#: The handbook's 15 features, in its column order.
FDH_FEATURES: Final = (
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(f"CUSTOMER_ID_{what}_{w}DAY_WINDOW" for w in _WINDOWS_D for what in ("NB_TX", "AVG_AMOUNT")),
    *(f"TERMINAL_ID_{what}_{w}DAY_WINDOW" for w in _WINDOWS_D for what in ("NB_TX", "RISK")),
)
#: Ours, on top of the handbook's (no label younger than the delay, no label of the row itself).
EXTRA_FEATURES: Final = (
    "hour_of_day",
    "amount_vs_mean_by_customer_30d",
    "amount_vs_max_by_customer_30d",
    "seconds_since_last_tx_by_customer",
    "tx_count_by_customer_1h",
    "new_terminal_for_customer",
    "tx_count_by_terminal_1d",
    "terminal_frauds_90d_delayed",
    "terminal_risk_90d_delayed",
    "customer_frauds_30d_delayed",
    "amount_vs_median_by_customer_30d",
    "amount_zscore_by_customer_30d",
    "high_amount_count_by_customer_14d",
    "terminal_fraud_streak_delayed",
    "days_since_terminal_streak_start_delayed",
    "days_since_terminal_fraud_delayed",
    "terminal_risk_last5_delayed",
)
#: A transaction is "high" for its customer above this multiple of their 30-day median amount.
HIGH_AMOUNT_RATIO: Final = 3.0
CARD_FEATURES: Final = (*FDH_FEATURES, *EXTRA_FEATURES)
#: Stateful columns per row: 12 of the handbook's and 15 of ours.
_STATE_WIDTH: Final = STATE_WIDTH
#: The longest look-back past the delay: terminal windows reach ``t - delay - 90 d``.
LONGEST_WINDOW_MS: Final = 90 * DAY_MS

log = logging.getLogger(__name__)


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``num / den`` where ``den`` is at least one cent, else 0 (never inf)."""
    ok = den >= 0.01
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def assemble(batch: TxBatch, s: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """The feature matrix from the row fields and the stateful columns ``s`` (per row)."""
    t = batch.event_time_ms
    x = np.empty((len(batch), len(CARD_FEATURES)), dtype=np.float32)
    day = t // DAY_MS
    hour = t // _HOUR_MS % 24
    x[:, 0] = batch.amount
    x[:, 1] = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday (weekday 3)
    x[:, 2] = hour <= 6
    x[:, 3:15] = s[:, 0:12]
    amount = batch.amount
    mean30 = s[:, 5]
    x[:, 15] = hour
    x[:, 16] = _ratio(amount, mean30)
    x[:, 17:] = s[:, 12:]
    x[:, 17] = _ratio(amount, s[:, 12])
    return x


class CardFeatureEngine(SavesPartitions):
    """Incremental card features, state kept per partition as :class:`FeatureEngine` keeps it.

    A row reads and updates the state of its partition only, so a partition's state can move
    to another detector and be rebuilt there exactly; terminals' state is therefore per
    partition too (a terminal's transactions from customers of other partitions are not seen).
    Offline, without ``partition``, rows must come sorted by event time and are partitioned by
    customer as the producer's partitioner does (one partition by default: the handbook's
    protocol). A stream's rows are taken in event-time order within each partition of a batch.

    A customer or terminal idle for ``ttl_ms`` (event time; default ``delay_ms`` + 90 days, the
    longest look-back of any window) is forgotten: it is reset when next seen and its memory is
    freed by a sweep as the partition's event time advances.

    >>> CardFeatureEngine().feature_names[:3]
    ('TX_AMOUNT', 'TX_DURING_WEEKEND', 'TX_DURING_NIGHT')
    """

    mode: Final = "card"

    def __init__(
        self,
        *,
        delay_ms: int = 7 * DAY_MS,
        partitions: int = 1,
        labels: LabelBook | None = None,
        ttl_ms: int | None = None,
        extras: CardExtras | None = None,
    ) -> None:
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        ttl = delay_ms + LONGEST_WINDOW_MS if ttl_ms is None else ttl_ms
        if ttl < delay_ms + LONGEST_WINDOW_MS:
            raise ValueError(
                f"ttl_ms must cover delay_ms + 90 days ({delay_ms + LONGEST_WINDOW_MS}), got {ttl}"
            )
        self.delay_ms = delay_ms
        self.partitions = partitions
        self.ttl_ms = ttl
        #: the labels known so far (shared with whoever reads them: the detector, a replay)
        self.labels = labels if labels is not None else LabelBook()
        #: the extra fields read as features (``TxBatch.extras``), after the card features
        self.extras = extras if extras is not None else CardExtras()
        self._tables: dict[int, CardState] = {}
        self._watermark_ms: dict[int, int] = {}
        self._swept_ms: dict[int, int] = {}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names of :meth:`update_and_extract`'s output."""
        return (*CARD_FEATURES, *self.extras.feature_names)

    def _state_from_arrays(self, arrays: dict[str, npt.NDArray[Any]]) -> CardState:
        return CardState.from_arrays(arrays, len(self.extras.categoricals))

    def entity_count(self) -> tuple[int, int]:
        """Customers and terminals held, over all partitions."""
        states = self._tables.values()
        return sum(s.customers for s in states), sum(s.terminals for s in states)

    def state_bytes(self) -> tuple[int, int]:
        """Bytes of the customers' and the terminals' arrays, at allocated capacity."""
        states = self._tables.values()
        cust = sum(s.customer_bytes() for s in states)
        return cust, sum(s.nbytes() for s in states) - cust

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernels, on a throwaway engine."""
        n = 64
        t = np.arange(n, dtype=np.int64) * 3 * DAY_MS
        ids = [f"warm-{i}" for i in range(n)]
        book = LabelBook()
        engine = CardFeatureEngine(delay_ms=DAY_MS, labels=book, partitions=2)
        batch = _warm_batch(t, ids)
        from fraudstream.schema import LabelMessage

        book.add(
            LabelMessage(i, 1, int(tt), account=c, counterparty=m, tx_time_ms=int(tt))
            for i, tt, c, m in zip(ids, t.tolist(), batch.account, batch.counterparty, strict=True)
        )
        engine.update_and_extract(batch)
        for state in engine._tables.values():
            state.sweep(int(t[-1]))

    def partitions_held(self) -> list[int]:
        """The partitions whose state this engine holds, ascending."""
        return sorted(self._tables)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the state of ``partitions`` (their new owner restores it)."""
        for p in partitions:
            self._tables.pop(p, None)
            self._watermark_ms.pop(p, None)
            self._swept_ms.pop(p, None)

    def state_fingerprint(self) -> str:
        """What a saved partition state of this engine means (see :meth:`save_partition`)."""
        extras = {"extras": self.extras.as_dicts()} if self.extras else {}
        return fingerprint(
            engine="card",
            layout=1,
            features=self.feature_names,
            **extras,
            width=STATE_WIDTH,
            delay_ms=self.delay_ms,
            ttl_ms=self.ttl_ms,
            partitions=self.partitions,
        )

    def update_and_extract(
        self, batch: TxBatch, partition: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.float32]:
        """Features of every row of ``batch``; then the rows are folded into the state.

        Label features read :attr:`labels` at each row's event time; ``batch.label`` is never
        read.
        """
        n = len(batch)
        if n == 0:
            return np.empty((0, len(self.feature_names)), dtype=np.float32)
        t = batch.event_time_ms
        if partition is None:
            if np.any(np.diff(t) < 0):
                raise ValueError("CardFeatureEngine needs rows sorted by event_time_ms")
            partition = partition_of(batch.account, self.partitions)
        order = np.argsort(t, kind="stable")  # the identity for sorted rows
        extras = self.extras
        cats, row = extras.encode(batch.extras, n)
        s = np.empty((n, _STATE_WIDTH + 2 * cats.shape[1]), dtype=np.float64)
        cust, term, txk = keys_of(batch.account), keys_of(batch.counterparty), keys_of(batch.tx_id)
        for p, rows in _groups(partition[order]):
            state = self._tables.get(p)
            if state is None:
                state = self._tables[p] = CardState(cats.shape[1])
            idx = order[rows]
            times = np.ascontiguousarray(t[idx])
            groups, frauds = gather_frauds(
                self.labels,
                _pick(batch.account, idx),
                _pick(batch.counterparty, idx),
                int(times[0]),
                int(times[-1]),
                self.delay_ms,
                self.partitions,
            )
            s[idx] = state.update(
                times, cust[idx], term[idx], txk[idx],
                np.ascontiguousarray(batch.amount[idx], np.float64),
                groups, frauds, p, self.delay_ms, self.ttl_ms, cats[idx],
            )  # fmt: skip
            self._maybe_sweep(p, state, int(times[-1]))
        x = assemble(batch, s[:, :_STATE_WIDTH])
        if not extras:
            return x
        return np.hstack([x, row, s[:, _STATE_WIDTH:]], dtype=np.float32)

    def _maybe_sweep(self, partition: int, state: CardState, batch_max_ms: int) -> None:
        """Free idle entities now and then (features already ignore them, this bounds memory)."""
        mark = max(self._watermark_ms.get(partition, batch_max_ms), batch_max_ms)
        self._watermark_ms[partition] = mark
        swept = self._swept_ms.setdefault(partition, mark)
        if mark - swept < max(1, self.ttl_ms // 8):
            return
        removed = state.sweep(mark - self.ttl_ms)
        self._swept_ms[partition] = mark
        if removed:
            log.debug("partition %d: evicted %d idle customers and terminals", partition, removed)


def _pick(values: list[str], idx: npt.NDArray[np.intp]) -> Sequence[str]:
    """``values`` at ``idx`` (``values`` itself when ``idx`` is all of it, in order)."""
    n = len(idx)
    if n == len(values) and bool((idx == np.arange(n)).all()):
        return values
    if n == 1:
        return [values[int(idx[0])]]
    return itemgetter(*idx.tolist())(values)  # type: ignore[no-any-return]


def _warm_batch(t: npt.NDArray[np.int64], ids: list[str]) -> TxBatch:
    n = len(ids)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=ids,
        event_time_ms=t,
        account=[f"c{i % 5}" for i in range(n)],
        counterparty=[f"m{i % 3}" for i in range(n)],
        kind=np.zeros(n, dtype=np.int8),
        amount=np.arange(n, dtype=np.float64),
        old_balance_orig=nan,
        new_balance_orig=nan,
        old_balance_dest=nan,
        new_balance_dest=nan,
        label=np.zeros(n, dtype=np.int8),
        step=np.zeros(n, dtype=np.int64),
        flagged=np.zeros(n, dtype=np.int8),
    )
