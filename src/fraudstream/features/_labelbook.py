"""Labels known so far, as state the feature engines query by entity and by time.

A :class:`LabelBook` holds every label a process has read (a detector reads the whole
``fraud-labels`` topic: a global table, see ``docs/labels.md``). Per transaction it keeps the
verdicts and derives the transaction's *status intervals*: from each label's time on, the verdict
in force (rules in ``schema._labels``: the latest ``labelled_at_ms`` wins from its own time on;
at equal times the source of higher precedence, then fraud; the same verdict from the same source
counts from its earliest time). A feature at event time *t* sees exactly the intervals with
``start <= t < end``, so the book may hold labels from the future (a training replay loads them
all up front) without leaking them: features depend on the labels' times, never on when they
were read.

Two read paths:

- :class:`LabelCounts`: vectorised counts per batch for the PaySim engine: intervals whose start
  lies in a window ``(t - w, t]`` and that are still in force at *t*, per entity and role;
- :meth:`LabelBook.frauds_of` / :meth:`LabelBook.fraud_at`: per-row lookups for the card engine's
  loop (fraud transactions of a terminal or customer sorted by transaction time).
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from fraudstream.features._state import keys_of
from fraudstream.schema import SOURCE_PRECEDENCE, LabelMessage

__all__ = ["END_OF_TIME", "AddResult", "LabelBook", "LabelCounts", "Role"]

#: ``end`` of an interval still in force.
END_OF_TIME: Final = 2**62
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
#: Which side of the labelled transaction an entity was on, and which verdict is counted.
Role = Literal["sent_fraud", "received_fraud", "received_genuine"]
#: An index entry: ``(role, entity, start, end, weight, tx_time_ms)``, one status interval
#: (``[start, end)``) of a labelled transaction, counted ``weight`` times (-1 takes one back).
Entry = tuple[Role, str, int, int, int, int]
_ROLES: Final[tuple[Role, ...]] = ("sent_fraud", "received_fraud", "received_genuine")
_SPAN_BITS: Final = 41  # interval starts relative to the book's origin: 2^41 ms ≈ 70 years
_MAX_RANK: Final = 2 ** (62 - _SPAN_BITS)
_LEVEL_RATIO: Final = 8  # LabelCounts: each index at least this many times the next one's size


@dataclass(slots=True)
class _Tx:
    """One labelled transaction: its parties, time, verdicts and the intervals they give."""

    account: str
    counterparty: str
    tx_time_ms: int
    label_ids: set[str] = field(default_factory=set)
    #: (labelled_at_ms, precedence, label): the earliest per (label, source) only
    verdicts: dict[tuple[int, str], tuple[int, int, int]] = field(default_factory=dict)
    #: (start, end, label), sorted, contiguous from the first verdict on
    intervals: list[tuple[int, int, int]] = field(default_factory=list)
    partition_crc: int = -1


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`LabelBook.add` did with a batch of labels."""

    applied: int = 0
    duplicates: int = 0
    #: labels that changed the verdict of a transaction labelled before (analyst vs chargeback)
    contradicting: int = 0
    #: labels that lack the transaction's account, counterparty or time (see ``stream._labels``)
    unresolved: tuple[LabelMessage, ...] = ()


def _intervals(verdicts: Iterable[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Status intervals of one transaction from its verdicts (order-independent)."""
    out: list[tuple[int, int, int]] = []
    for at, _prec, label in sorted(verdicts):
        if out and out[-1][0] == at:  # same time: the later in sort order wins
            out.pop()
            if out and out[-1][2] == label:  # merges back into the one before
                start, _, _ = out.pop()
                out.append((start, END_OF_TIME, label))
                continue
        if out:
            if out[-1][2] == label:
                continue
            start, _, prev = out.pop()
            out.append((start, at, prev))
        out.append((at, END_OF_TIME, label))
    return out


class LabelBook:
    """Every label read so far, by transaction id; see the module docstring.

    >>> from fraudstream.schema import LabelMessage
    >>> book = LabelBook()
    >>> lab = LabelMessage("t1", 1, 5_000, account="A", counterparty="M", tx_time_ms=1_000)
    >>> book.add([lab]).applied, book.fraud_at("t1", 4_999), book.fraud_at("t1", 5_000)
    (1, False, True)
    """

    def __init__(self) -> None:
        self._tx: dict[str, _Tx] = {}
        #: per entity: fraud transactions' (tx_time_ms, tx_id), sorted (card engine)
        self._frauds_by: dict[str, dict[str, list[tuple[int, str]]]] = {
            "account": {},
            "counterparty": {},
        }
        self.version = 0  # bumped by every change
        self.latest_ms = 0  # the latest label time read
        self._counts: LabelCounts | None = None
        #: transactions whose intervals changed since the index was updated: their old intervals
        self._changed: dict[str, list[tuple[int, int, int]]] = {}

    def __len__(self) -> int:
        return len(self._tx)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._tx

    def add(self, labels: Iterable[LabelMessage]) -> AddResult:
        """Apply ``labels`` (any order, duplicates allowed); returns what happened to them."""
        applied = duplicates = contradicting = 0
        unresolved: list[LabelMessage] = []
        for lab in labels:
            tx = self._tx.get(lab.tx_id)
            if tx is None:
                if lab.account is None or lab.counterparty is None or lab.tx_time_ms is None:
                    unresolved.append(lab)
                    continue
                tx = self._tx[lab.tx_id] = _Tx(lab.account, lab.counterparty, lab.tx_time_ms)
            assert lab.label_id is not None  # computed while decoding
            if lab.label_id in tx.label_ids:
                duplicates += 1
                continue
            tx.label_ids.add(lab.label_id)
            key = (lab.label, lab.source)
            verdict = (lab.labelled_at_ms, SOURCE_PRECEDENCE[lab.source], lab.label)
            known = tx.verdicts.get(key)
            if known is not None and known <= verdict:
                duplicates += 1  # the same verdict from the same source, known earlier
                continue
            if any(v[2] != lab.label for v in tx.verdicts.values()):
                contradicting += 1
            tx.verdicts[key] = verdict
            self._update(lab.tx_id, tx)
            applied += 1
            self.latest_ms = max(self.latest_ms, lab.labelled_at_ms)
        return AddResult(applied, duplicates, contradicting, tuple(unresolved))

    def _update(self, tx_id: str, tx: _Tx) -> None:
        old = tx.intervals
        new = _intervals(tx.verdicts.values())
        if new == old:
            return
        was_fraud = any(label == 1 for _, _, label in old)
        tx.intervals = new
        self.version += 1
        self._changed.setdefault(tx_id, old)
        if not was_fraud and any(label == 1 for _, _, label in new):
            for role, entity in (("account", tx.account), ("counterparty", tx.counterparty)):
                bisect.insort(self._frauds_by[role].setdefault(entity, []), (tx.tx_time_ms, tx_id))

    # --- per-row lookups (card engine) ---------------------------------------------------------

    def fraud_at(self, tx_id: str, t_ms: int) -> bool:
        """Whether ``tx_id`` is labelled fraud by the labels known at ``t_ms``."""
        tx = self._tx.get(tx_id)
        if tx is None:
            return False
        for start, end, label in tx.intervals:
            if start <= t_ms < end:
                return label == 1
        return False

    def ever_fraud(self, tx_id: str) -> bool:
        """Whether some label in the book says ``tx_id`` is a fraud (at any time)."""
        tx = self._tx.get(tx_id)
        return tx is not None and any(label == 1 for _, _, label in tx.intervals)

    def intervals_of(self, tx_id: str) -> list[tuple[int, int, int]]:
        """``(start, end, label)`` status intervals of ``tx_id`` (empty when unlabelled)."""
        tx = self._tx.get(tx_id)
        return tx.intervals if tx is not None else []

    def fraud_entities(
        self, role: Literal["account", "counterparty"]
    ) -> Mapping[str, list[tuple[int, str]]]:
        """Every entity in ``role`` with a transaction ever labelled fraud → its
        :meth:`frauds_of` entries (a read-only view: do not change it)."""
        return self._frauds_by[role]

    def frauds_of(
        self, role: Literal["account", "counterparty"], entity: str
    ) -> list[tuple[int, str]]:
        """``(tx_time_ms, tx_id)`` of every transaction ever labelled fraud with ``entity`` in
        ``role``, by transaction time (check :meth:`fraud_at` for the verdict at a time)."""
        return self._frauds_by[role].get(entity, _EMPTY)

    def fraud_times(
        self,
        role: Literal["account", "counterparty"],
        entity: str,
        lo_ms: int,
        hi_ms: int,
        t_ms: int,
        keep: Callable[[str], bool] | None = None,
    ) -> list[int]:
        """Times in ``[lo_ms, hi_ms)`` of ``entity``'s transactions (in ``role``) that the labels
        known at ``t_ms`` call fraud, ascending; ``keep`` filters by transaction id."""
        rows = self._frauds_by[role].get(entity)
        if not rows:
            return []
        a = bisect.bisect_left(rows, (lo_ms,))
        b = bisect.bisect_left(rows, (hi_ms,))
        fraud_at = self.fraud_at
        return [tt for tt, i in rows[a:b] if (keep is None or keep(i)) and fraud_at(i, t_ms)]

    def partition_crc(self, tx_id: str) -> int:
        """CRC-32 of the labelled transaction's account (its partition, as the producer's)."""
        tx = self._tx[tx_id]
        if tx.partition_crc < 0:
            tx.partition_crc = zlib.crc32(tx.account.encode())
        return tx.partition_crc

    # --- vectorised counts (PaySim engine) -----------------------------------------------------

    def counts(self) -> LabelCounts:
        """The book's intervals indexed for :meth:`LabelCounts.count` (kept up to date)."""
        if self._counts is None:
            self._counts = LabelCounts(self._all_entries())
            self._changed.clear()
        elif self._changed:
            self._counts.apply(self._entries_of_changes())
            self._changed.clear()
        return self._counts

    def _all_entries(self) -> list[Entry]:
        out: list[Entry] = []
        for tx in self._tx.values():
            out += _entries(tx, tx.intervals, 1)
        return out

    def _entries_of_changes(self) -> list[Entry]:
        out: list[Entry] = []
        for tx_id, old in self._changed.items():
            tx = self._tx[tx_id]
            out += _entries(tx, old, -1)
            out += _entries(tx, tx.intervals, 1)
        self._changed.clear()
        return out

    def evict(self, before_ms: int) -> int:
        """Forget transactions whose time and every verdict are before ``before_ms``."""
        gone = [
            k
            for k, tx in self._tx.items()
            if tx.tx_time_ms < before_ms and all(v[0] < before_ms for v in tx.verdicts.values())
        ]
        if not gone:
            return 0
        for k in gone:
            tx = self._tx.pop(k)
            for role, entity in (("account", tx.account), ("counterparty", tx.counterparty)):
                rows = self._frauds_by[role].get(entity)
                if rows is not None:
                    rows[:] = [r for r in rows if r[1] != k]
                    if not rows:
                        del self._frauds_by[role][entity]
        self._counts = None  # rebuilt on next use
        self._changed.clear()
        self.version += 1
        return len(gone)


_EMPTY: Final[list[tuple[int, str]]] = []


def _entries(tx: _Tx, intervals: list[tuple[int, int, int]], weight: int) -> list[Entry]:
    """``(role, entity, start, end, weight)`` index entries of one transaction's intervals."""
    out: list[Entry] = []
    at = tx.tx_time_ms
    for start, end, label in intervals:
        if label == 1:
            out.append(("sent_fraud", tx.account, start, end, weight, at))
            out.append(("received_fraud", tx.counterparty, start, end, weight, at))
        else:
            out.append(("received_genuine", tx.counterparty, start, end, weight, at))
    return out


_TOP: Final = (1 << _SPAN_BITS) - 1


def _span(offsets: I64) -> I64:
    """Times relative to an index's origin, clipped to ``[-1, 2^41)`` (two ufuncs: ``np.clip``
    costs ~10 µs a call on the small arrays of a live batch)."""
    return np.minimum(np.maximum(offsets, -1), _TOP)


class _Segment:
    """One immutable sorted index: entries of one role by (entity rank, start), weight sums."""

    __slots__ = ("by_tx", "closed", "cum", "keys", "origin", "packed")

    def __init__(self, keys: I64, starts: I64, ends: I64, weights: I64, origin: int) -> None:
        #: the same entries by transaction time (fraud roles only)
        self.by_tx: _TxSegment | None = None
        ukeys, rank = np.unique(keys, return_inverse=True)
        if len(ukeys) >= _MAX_RANK:
            raise OverflowError(f"label index holds {len(ukeys)} entities; at most {_MAX_RANK}")
        packed = (rank.astype(np.int64) << _SPAN_BITS) | (starts - origin)
        order = np.argsort(packed, kind="stable")
        self.keys = ukeys
        self.origin = origin
        self.packed = packed[order]
        self.cum = np.concatenate(([0], np.cumsum(weights[order])))
        finite = np.flatnonzero(ends < END_OF_TIME)
        by_key = finite[np.argsort(keys[finite], kind="stable")]
        #: entries that ended (a later contradicting verdict), by key: (key, start, end, weight)
        self.closed = (keys[by_key], starts[by_key], ends[by_key], weights[by_key])

    def count(self, keys: I64, t: I64, windows_ms: Sequence[int]) -> list[I64]:
        """Per window: sum of weights of entries of ``keys`` with start in
        ``(t - window_ms, t]``, in force at ``t`` (the keys looked up once for all windows)."""
        n = len(keys)
        if not len(self.keys) or not n:
            return [np.zeros(n, dtype=np.int64) for _ in windows_ms]
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        rows = np.flatnonzero(self.keys[pos] == keys)  # only rows whose key has entries
        if not len(rows):
            return [np.zeros(n, dtype=np.int64) for _ in windows_ms]
        keys, t = keys[rows], t[rows]
        base = pos[rows].astype(np.int64) << _SPAN_BITS
        hi = np.searchsorted(self.packed, base + _span(t - self.origin), side="right")
        out = []
        for window_ms in windows_ms:
            lo_t = _span(t - window_ms - self.origin)
            got = self.cum[hi] - self.cum[np.searchsorted(self.packed, base + lo_t, side="right")]
            if len(self.closed[0]):
                got -= self._ended(keys, t, window_ms)
            full = np.zeros(n, dtype=np.int64)
            full[rows] = got
            out.append(full)
        return out

    def _ended(self, keys: I64, t: I64, window_ms: int) -> I64:
        """Per row: the weights of ended entries of its key that the window counted (start in
        ``(t - window_ms, t]``) but that are no longer in force at ``t`` (end <= t).

        Vectorised over (row, entry of its key) pairs: a key has few ended entries.
        """
        ck, cs, ce, cw = self.closed
        lo = np.searchsorted(ck, keys, side="left")
        n = np.searchsorted(ck, keys, side="right") - lo
        out = np.zeros(len(keys), dtype=np.int64)
        rows = np.flatnonzero(n)
        if not len(rows):
            return out
        counts = n[rows]
        row = np.repeat(rows, counts)  # each row once per ended entry of its key
        first = np.repeat(lo[rows] - np.cumsum(counts) + counts, counts)
        entry = first + np.arange(len(row))
        tr = t[row]
        taken = (cs[entry] > tr - window_ms) & (cs[entry] <= tr) & (ce[entry] <= tr)
        np.add.at(out, row[taken], cw[entry[taken]])
        return out


class LabelCounts:
    """Weighted interval counts per role, as a few immutable indexes of geometric sizes.

    A change to a transaction's verdicts adds its old intervals with weight -1 and its new ones
    with +1, as a new small index; an index is merged with the one before while that one is
    less than :data:`_LEVEL_RATIO` times its size (a log-structured merge: each entry is
    rebuilt O(log n) times, a query looks at O(log n) indexes, and a batch that brings a label
    rebuilds only small ones however many labels the book holds).
    """

    def __init__(self, entries: list[Entry]) -> None:
        self._levels: list[tuple[list[Entry], dict[Role, _Segment]]] = []
        self.apply(entries)

    def apply(self, entries: list[Entry]) -> None:
        """Add weighted entries (a change of some transactions' intervals)."""
        if not entries:
            return
        level = list(entries)
        while self._levels and len(self._levels[-1][0]) < _LEVEL_RATIO * len(level):
            level = _net(self._levels.pop()[0] + level)
        if level:
            self._levels.append((level, _build(level)))

    def count(self, role: Role, keys: I64, t: I64, window_ms: int) -> I64:
        """Per row: intervals of ``role`` whose entity key is ``keys[i]``, started in
        ``(t[i] - window_ms, t[i]]`` and in force at ``t[i]``."""
        return self.count_windows(role, keys, t, (window_ms,))[0]

    def count_windows(self, role: Role, keys: I64, t: I64, windows_ms: Sequence[int]) -> list[I64]:
        """:meth:`count` for several windows at once (one key lookup per index)."""
        out = [np.zeros(len(keys), dtype=np.int64) for _ in windows_ms]
        for _, segments in self._levels:
            seg = segments.get(role)
            if seg is not None:
                for total, part in zip(out, seg.count(keys, t, windows_ms), strict=True):
                    total += part
        return out

    def recent(self, role: Role, keys: I64, t: I64, window_ms: int) -> I64:
        """Per row: transactions of ``keys[i]`` in ``role`` at most ``window_ms`` old (time in
        ``(t[i] - window_ms, t[i]]``) whose verdict in force at ``t[i]`` is ``role``'s."""
        out = np.zeros(len(keys), dtype=np.int64)
        for _, segments in self._levels:
            seg = segments.get(role)
            if seg is not None and seg.by_tx is not None:
                out += seg.by_tx.recent(keys, t, window_ms)
        return out


def _net(entries: list[Entry]) -> list[Entry]:
    """Entries with the weights of equal entries summed, zeros dropped."""
    total: dict[tuple[Role, str, int, int, int], int] = {}
    for role, entity, start, end, w, at in entries:
        k = (role, entity, start, end, at)
        total[k] = total.get(k, 0) + w
    return [
        (role, entity, start, end, w, at)
        for (role, entity, start, end, at), w in total.items()
        if w
    ]


def _build(entries: Sequence[Entry]) -> dict[Role, _Segment]:
    out: dict[Role, _Segment] = {}
    for role in _ROLES:
        rows = [e for e in entries if e[0] == role]
        if not rows:
            continue
        starts, ends, weights, tx_times = (
            np.fromiter((e[i] for e in rows), np.int64, len(rows)) for i in (2, 3, 4, 5)
        )
        keys = keys_of([e[1] for e in rows])
        seg = _Segment(keys, starts, ends, weights, int(starts.min()) - 1)
        if role != "received_genuine":
            seg.by_tx = _TxSegment(keys, tx_times, starts, ends, weights)
        out[role] = seg
    return out


class _TxSegment:
    """One role's entries by (entity rank, transaction time), for counts of the transactions
    of a time window that are in force at *t* (:meth:`LabelCounts.recent`)."""

    __slots__ = ("ends", "keys", "origin", "packed", "starts", "weights")

    def __init__(self, keys: I64, tx_times: I64, starts: I64, ends: I64, weights: I64) -> None:
        self.keys, rank = np.unique(keys, return_inverse=True)
        self.origin = int(tx_times.min()) - 1
        packed = (rank.astype(np.int64) << _SPAN_BITS) | (tx_times - self.origin)
        order = np.argsort(packed, kind="stable")
        self.packed = packed[order]
        self.starts, self.ends, self.weights = starts[order], ends[order], weights[order]

    def recent(self, keys: I64, t: I64, window_ms: int) -> I64:
        """Per row: weights of entries of ``keys[i]`` with transaction time in
        ``(t[i] - window_ms, t[i]]`` and interval in force at ``t[i]``.

        Vectorised over (row, entry in its window) pairs, as a detector's window holds few.
        """
        out = np.zeros(len(keys), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        rows = np.flatnonzero(self.keys[pos] == keys)
        if not len(rows):
            return out
        tr = t[rows]
        base = pos[rows].astype(np.int64) << _SPAN_BITS
        hi = np.searchsorted(self.packed, base + _span(tr - self.origin), "right")
        lo = np.searchsorted(self.packed, base + _span(tr - window_ms - self.origin), "right")
        n = hi - lo
        row = np.repeat(rows, n)  # each row once per entry in its window
        entry = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(len(row))
        at = t[row]
        live = (self.starts[entry] <= at) & (self.ends[entry] > at)
        np.add.at(out, row[live], self.weights[entry[live]])
        return out
