"""The feature engine: one object used by the detector (stream) and by training (replay)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from fraudstream.features._labelbook import LabelBook
from fraudstream.features._state import (
    RECENT_COUNTERPARTIES,
    STATE_COLUMNS,
    WINDOW_MS,
    PartitionState,
    SavesPartitions,
    fingerprint,
    keys_of,
)
from fraudstream.schema import KINDS, TxBatch

__all__ = [
    "LABEL_FEATURES",
    "NEVER_S",
    "POST_TX_FEATURES",
    "PRE_AUTH_FEATURES",
    "SECONDS_CAP_S",
    "FeatureEngine",
    "Mode",
    "feature_names",
    "partition_of",
]

log = logging.getLogger(__name__)

Mode = Literal["pre_auth", "post_tx"]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

#: ``seconds_since_*`` features are capped here (7 days) ...
SECONDS_CAP_S: Final = 7 * 86_400.0
#: ... and take this value when there is no earlier event.
NEVER_S: Final = 2 * SECONDS_CAP_S
#: Ratios to past amounts are 0 below this denominator (one cent), never inf.
MIN_DENOMINATOR: Final = 0.01
_DRAIN_SHARE: Final = 0.99
_RECEIVING_KINDS: Final = (KINDS.index("TRANSFER"), KINDS.index("CASH_IN"))
_DAY_MS: Final = 86_400_000
#: Window over transaction time of the ``*_tx_6h`` label features.
_RECENT_TX_MS: Final = 6 * 3_600_000

#: From the labels known at the row's event time (``LabelBook``), over windows of label time:
#: frauds confirmed against the counterparty (it received them: a breached merchant, a mule),
#: the share of its verdicts that were fraud, and the account's own confirmed frauds as sender
#: (a taken-over account) and as receiver (a mule cashing out). The ``_tx_6h`` pair counts, among
#: the frauds known at the row's time, those whose *transaction* is at most 6 hours old: a
#: merchant or customer whose frauds are that recent is likely still compromised, where a label
#: window also counts a chargeback arriving today for a fraud of weeks ago.
LABEL_FEATURES: Final = (
    "confirmed_frauds_to_counterparty_1d",
    "confirmed_frauds_to_counterparty_7d",
    "confirmed_frauds_to_counterparty_30d",
    "counterparty_fraud_share_30d",
    "confirmed_frauds_by_account_30d",
    "confirmed_frauds_to_account_30d",
    "confirmed_frauds_to_counterparty_tx_6h",
    "confirmed_frauds_by_account_tx_6h",
)

#: Known before authorisation: the row's own fields (no new balances) and earlier rows' state.
PRE_AUTH_FEATURES: Final = (
    "amount",
    "log_amount",
    *(f"kind_{k.lower()}" for k in KINDS),
    "old_balance_orig",
    "old_balance_orig_missing",
    "amount_to_old_balance_orig",
    "drains_balance",
    "old_balance_dest",
    "old_balance_dest_missing",
    "hour_of_day",
    "tx_count_by_account_1h",
    "amount_sum_by_account_1h",
    "amount_vs_mean_by_account",
    "seconds_since_last_by_account",
    "new_counterparty_for_account",
    "seconds_since_account_received",
    "received_amount_ratio",
    "tx_count_to_counterparty_1h",
    "distinct_senders_to_counterparty_1h",
    *LABEL_FEATURES,
)
#: Post-transaction mode adds the balance errors (NaN inputs give 0 and a ``_missing`` flag).
POST_TX_FEATURES: Final = (
    *PRE_AUTH_FEATURES,
    "error_balance_orig",
    "error_balance_orig_missing",
    "error_balance_dest",
    "error_balance_dest_missing",
)


def feature_names(mode: Mode) -> tuple[str, ...]:
    """The feature names of ``mode``, in column order."""
    if mode not in get_args(Mode):
        raise ValueError(f"unknown feature mode {mode!r}; expected 'pre_auth' or 'post_tx'")
    return PRE_AUTH_FEATURES if mode == "pre_auth" else POST_TX_FEATURES


class FeatureEngine(SavesPartitions):
    """Incremental per-entity state plus extraction, in event-time order.

    Each row's features come from strictly earlier rows plus the row's own fields, and from the
    labels of :attr:`labels` known at the row's event time; then the row is folded into the
    state. A row's own ``label`` is never read; ``pre_auth`` never reads new balances. Entities
    idle for ``ttl_ms`` (event time) are forgotten.

    >>> FeatureEngine().feature_names[:2]
    ('amount', 'log_amount')
    """

    _state_from_arrays = PartitionState.from_arrays

    def __init__(
        self,
        *,
        mode: Mode = "pre_auth",
        ttl_ms: int = 30 * 86_400_000,
        partitions: int = 1,
        labels: LabelBook | None = None,
    ) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.mode: Mode = mode
        self.ttl_ms = ttl_ms
        self.partitions = partitions
        self._names = feature_names(mode)
        #: the labels known so far (shared with whoever reads them: the detector, a replay)
        self.labels = labels if labels is not None else LabelBook()
        self._tables: dict[int, PartitionState] = {}
        self._watermark_ms: dict[int, int] = {}
        self._swept_ms: dict[int, int] = {}
        #: an entity is swept only once idle for ``ttl_ms + sweep_lag_ms`` behind the newest row
        #: of its partition: a row up to ``sweep_lag_ms`` late (the event-time guard's maximum
        #: lateness) then reads the same state whenever the sweep ran, so features do not depend
        #: on batch boundaries (state idle longer than ``ttl_ms`` at the row's time is ignored)
        self.sweep_lag_ms = 0

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names of :meth:`update_and_extract`'s output."""
        return self._names

    def entity_count(self) -> int:
        """Entity states held (an account that both sends and receives counts twice)."""
        return sum(t.senders + t.receivers for t in self._tables.values())

    def state_bytes(self) -> int:
        """Bytes of all state arrays, at their allocated capacity."""
        return sum(t.nbytes() for t in self._tables.values())

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the state kernels, on a throwaway state.

        Enough rows to grow every hash table once: a kernel first needed by a growth in the
        middle of a run (``_reindex_pairs``) would otherwise be compiled there, stalling a batch.
        """
        state = PartitionState()
        n = 64
        keys = keys_of([f"warm-{i}" for i in range(n)])
        state.update(
            np.arange(n, dtype=np.int64), keys, keys[::-1].copy(), np.ones(n), np.ones(n, bool), 1
        )
        state.sweep(10 * n)

    def partitions_held(self) -> list[int]:
        """The partitions whose state this engine holds, ascending."""
        return sorted(self._tables)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the state of ``partitions`` (their new owner restores it; see ``stream``)."""
        for p in partitions:
            self._tables.pop(p, None)
            self._watermark_ms.pop(p, None)
            self._swept_ms.pop(p, None)

    def state_fingerprint(self) -> str:
        """What a saved partition state of this engine means (see :meth:`save_partition`)."""
        return fingerprint(
            engine="paysim",
            layout=1,
            mode=self.mode,
            features=self._names,
            state=STATE_COLUMNS,
            ttl_ms=self.ttl_ms,
            sweep_lag_ms=self.sweep_lag_ms,
            window_ms=WINDOW_MS,
            recent=RECENT_COUNTERPARTIES,
        )

    def update_and_extract(self, batch: TxBatch, partition: I32 | None = None) -> F32:
        """Features of every row of ``batch`` (shape ``(len(batch), len(feature_names))``).

        State is kept per partition, like Kafka Streams' state stores: a row reads and updates
        only the state of its ``partition`` (the Kafka partition it was read from), so a
        partition's state can move to another process and be rebuilt there exactly. Without
        ``partition`` (training, replay of files) rows are partitioned as the producer's default
        partitioner does (:func:`partition_of` over ``partitions``).
        """
        n = len(batch)
        x = np.empty((n, len(self._names)), dtype=np.float32)
        if n == 0:
            return x
        if partition is None:
            partition = partition_of(batch.account, self.partitions)
        times = batch.event_time_ms
        receives = (batch.kind == _RECEIVING_KINDS[0]) | (batch.kind == _RECEIVING_KINDS[1])
        accounts = keys_of(batch.account)
        counterparties = keys_of(batch.counterparty)
        state = np.empty((n, len(STATE_COLUMNS)), dtype=np.float64)
        for p, rows in _groups(partition):
            tables = self._tables.get(p)
            if tables is None:
                tables = self._tables[p] = PartitionState()
            whole = len(rows) == n
            sub = times if whole else times[rows]
            values = tables.update(
                sub,
                accounts if whole else accounts[rows],
                counterparties if whole else counterparties[rows],
                batch.amount if whole else batch.amount[rows],
                receives if whole else receives[rows],
                self.ttl_ms,
            )
            if whole:
                state = values
            else:
                state[rows] = values
            self._maybe_sweep(p, tables, int(sub.max()))
        cols = _row_features(batch)
        cols.update(_state_features(state, times, batch.amount))
        cols.update(_label_features(self.labels, times, accounts, counterparties))
        if self.mode == "post_tx":
            cols.update(_balance_errors(batch))
        for j, name in enumerate(self._names):
            x[:, j] = cols[name]
        return x

    def _maybe_sweep(self, partition: int, tables: PartitionState, batch_max_ms: int) -> None:
        """Free idle entities now and then (features already ignore them, this bounds memory)."""
        mark = max(self._watermark_ms.get(partition, batch_max_ms), batch_max_ms)
        self._watermark_ms[partition] = mark
        swept = self._swept_ms.setdefault(partition, mark)
        if mark - swept < max(1, self.ttl_ms // 8):
            return
        removed = tables.sweep(mark - self.ttl_ms - self.sweep_lag_ms)
        self._swept_ms[partition] = mark
        if removed:
            log.debug("partition %d: evicted %d idle entity states", partition, removed)


def partition_of(keys: list[str], partitions: int) -> I32:
    """The partition of each key as librdkafka's default partitioner picks it (CRC-32 mod n).

    >>> partition_of(["C1", "C2"], 1).tolist()
    [0, 0]
    """
    if partitions == 1:
        return np.zeros(len(keys), dtype=np.int32)
    crc = np.fromiter((zlib.crc32(k.encode()) for k in keys), dtype=np.uint32, count=len(keys))
    return (crc % partitions).astype(np.int32)


def _groups(partition: I32) -> list[tuple[int, npt.NDArray[np.intp]]]:
    """Row indices per partition, each in batch order."""
    first = int(partition[0])
    if (partition == first).all():
        return [(first, np.arange(len(partition)))]
    return [(int(p), np.flatnonzero(partition == p)) for p in np.unique(partition)]


def _row_features(b: TxBatch) -> dict[str, F64 | npt.NDArray[np.bool_]]:
    """Features of each row's own pre-authorisation fields (vectorised)."""
    amount = b.amount
    old_o = b.old_balance_orig
    old_o_missing = np.isnan(old_o)
    old_o0 = np.where(old_o_missing, 0.0, old_o)
    old_d_missing = np.isnan(b.old_balance_dest)
    cols: dict[str, F64 | npt.NDArray[np.bool_]] = {
        "amount": amount,
        "log_amount": np.log1p(np.maximum(amount, 0.0)),
        "old_balance_orig": old_o0,
        "old_balance_orig_missing": old_o_missing,
        "amount_to_old_balance_orig": amount / (old_o0 + 1.0),
        "drains_balance": ~old_o_missing & (amount >= _DRAIN_SHARE * old_o0),
        "old_balance_dest": np.where(old_d_missing, 0.0, b.old_balance_dest),
        "old_balance_dest_missing": old_d_missing,
        "hour_of_day": (b.event_time_ms // 3_600_000 % 24).astype(np.float64),
    }
    for code, kind in enumerate(KINDS):
        cols[f"kind_{kind.lower()}"] = b.kind == code
    return cols


def _seconds_since(now_ms: npt.NDArray[np.int64], then_ms: F64) -> F64:
    """Seconds from ``then_ms`` to ``now_ms``, capped; :data:`NEVER_S` where ``then_ms < 0``."""
    seconds = np.minimum((now_ms - then_ms) / 1000.0, SECONDS_CAP_S)
    return np.where(then_ms < 0, NEVER_S, seconds)


def _ratio(num: F64, den: F64) -> F64:
    """``num / den`` where ``den`` is at least one cent (:data:`MIN_DENOMINATOR`), else 0."""
    ok = den >= MIN_DENOMINATOR
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def _state_features(
    s: F64, times: npt.NDArray[np.int64], amount: F64
) -> dict[str, F64 | npt.NDArray[np.bool_]]:
    """Features from the state loop's raw columns (see ``_state.STATE_COLUMNS``)."""
    return {
        "tx_count_by_account_1h": s[:, 0],
        "amount_sum_by_account_1h": s[:, 1],
        "amount_vs_mean_by_account": _ratio(amount, s[:, 2]),
        "seconds_since_last_by_account": _seconds_since(times, s[:, 3]),
        "new_counterparty_for_account": s[:, 4],
        "seconds_since_account_received": _seconds_since(times, s[:, 5]),
        "received_amount_ratio": _ratio(amount, s[:, 6]),
        "tx_count_to_counterparty_1h": s[:, 7],
        "distinct_senders_to_counterparty_1h": s[:, 8],
    }


def _label_features(
    book: LabelBook,
    times: npt.NDArray[np.int64],
    accounts: npt.NDArray[np.int64],
    parties: npt.NDArray[np.int64],
) -> dict[str, F64 | npt.NDArray[np.bool_]]:
    """Counts of confirmed verdicts known at each row's time (see :data:`LABEL_FEATURES`);
    ``accounts`` and ``parties`` are the rows' entity keys (``features._state.keys_of``)."""
    n = len(times)
    if not len(book):
        zero = np.zeros(n)
        return dict.fromkeys(LABEL_FEATURES, zero)
    counts = book.counts()
    month = 30 * _DAY_MS
    days = (1, 7, 30)
    by_day = counts.count_windows("received_fraud", parties, times, [d * _DAY_MS for d in days])
    to_cp = dict(zip(days, by_day, strict=True))
    by_acc = counts.count("sent_fraud", accounts, times, month)
    genuine = counts.count("received_genuine", parties, times, month)
    verdicts = to_cp[30] + genuine
    return {
        "confirmed_frauds_to_counterparty_1d": to_cp[1].astype(np.float64),
        "confirmed_frauds_to_counterparty_7d": to_cp[7].astype(np.float64),
        "confirmed_frauds_to_counterparty_30d": to_cp[30].astype(np.float64),
        "counterparty_fraud_share_30d": np.where(
            verdicts > 0, to_cp[30] / np.maximum(verdicts, 1), 0.0
        ),
        "confirmed_frauds_by_account_30d": by_acc.astype(np.float64),
        "confirmed_frauds_to_account_30d": counts.count(
            "received_fraud", accounts, times, month
        ).astype(np.float64),
        "confirmed_frauds_to_counterparty_tx_6h": counts.recent(
            "received_fraud", parties, times, _RECENT_TX_MS
        ).astype(np.float64),
        "confirmed_frauds_by_account_tx_6h": counts.recent(
            "sent_fraud", accounts, times, _RECENT_TX_MS
        ).astype(np.float64),
    }


def _balance_errors(b: TxBatch) -> dict[str, F64 | npt.NDArray[np.bool_]]:
    """Post-transaction balance errors; 0 plus a ``_missing`` flag when a balance is absent."""
    err_o = b.old_balance_orig - b.amount - b.new_balance_orig
    err_d = b.old_balance_dest + b.amount - b.new_balance_dest
    miss_o = np.isnan(err_o)
    miss_d = np.isnan(err_d)
    return {
        "error_balance_orig": np.where(miss_o, 0.0, err_o),
        "error_balance_orig_missing": miss_o,
        "error_balance_dest": np.where(miss_d, 0.0, err_d),
        "error_balance_dest_missing": miss_d,
    }
