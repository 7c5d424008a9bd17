"""Per-entity state of one partition as columnar arrays, updated row by row by a compiled kernel.

Each row reads its features from strictly earlier rows, then is folded in: exact 1 h sliding
windows per account (count, sum), running mean and last time, whether the counterparty is among
the account's last :data:`RECENT_COUNTERPARTIES` distinct ones, the last money received, and per
counterparty the 1 h count and distinct senders. State idle for the TTL is treated as absent.

Layout (no Python object per entity): two open-addressing hash tables (senders, receivers) map a
64-bit entity key to a row of fixed-size columns; window events and recent counterparties are
nodes of one pooled free list (linked by ``int32`` indices); a third hash table counts each
(receiver, sender) pair inside the receiver's window, so distinct senders stay exact in O(1).

Keys are a fixed 64-bit hash of the id's UTF-8 bytes (FNV-1a, then splitmix64's finaliser):
the same in every process, so a partition's state can be saved and loaded elsewhere (see
``stream``'s snapshots; Python's ``hash`` is salted per process). Two ids with the same 64-bit key
would share state; among ``n`` entities that happens with probability about ``n² / 2⁶⁵``
(3·10⁻⁸ for a million).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "KEY_HASH",
    "RECENT_COUNTERPARTIES",
    "STATE_COLUMNS",
    "WINDOW_MS",
    "PartitionState",
    "SavedPartition",
    "SavesPartitions",
    "fingerprint",
    "keys_of",
]

#: Length of the sliding event-time windows (the ``_1h`` features).
WINDOW_MS: Final = 3_600_000
#: How many distinct recent counterparties an account remembers (least recently used dropped).
RECENT_COUNTERPARTIES: Final = 16
#: The raw per-row values :meth:`PartitionState.update` returns, in order (``-1`` = none).
STATE_COLUMNS: Final = (
    "tx_count_by_account_1h",
    "amount_sum_by_account_1h",
    "amount_mean_by_account",
    "last_tx_ms_by_account",
    "new_counterparty_for_account",
    "last_received_ms",
    "last_received_amount",
    "tx_count_to_counterparty_1h",
    "distinct_senders_to_counterparty_1h",
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

# sender columns: int64 [last_ms, key], float64 [total, window sum],
# int32 [n, window head, window tail, window length, recent head, recent length]
S_LAST, S_KEY = 0, 1
S_TOTAL, S_WSUM = 0, 1
S_N, S_WHEAD, S_WTAIL, S_WLEN, S_RHEAD, S_RLEN = 0, 1, 2, 3, 4, 5
# receiver columns: int64 [last_ms, key, received_ms], float64 [received amount],
# int32 [window head, window tail, window length, distinct senders]
R_LAST, R_KEY, R_RECV = 0, 1, 2
R_AMOUNT = 0
R_IHEAD, R_ITAIL, R_ILEN, R_DISTINCT = 0, 1, 2, 3
# meta: [senders, receivers, pairs, then free-list head, high-water mark and free nodes of the
# event pool (window events) and of the recent-counterparty pool]
M_SENDERS, M_RECEIVERS, M_PAIRS = 0, 1, 2
M_FREE, M_HIGH, M_NFREE = 3, 4, 5  # event pool; the recent pool's are at + _RECENT
_RECENT: Final = 3
_CHUNK: Final = 4096  # rows per kernel call (capacity is reserved per call)
_LOAD: Final = 0.75  # largest hash-table load before it doubles (linear probing, mixed keys)


#: Names the key hash: saved state is only valid with the same one.
KEY_HASH: Final = "fnv1a64-splitmix"


@dataclass(frozen=True)
class SavedPartition:
    """One partition's whole feature state: its arrays (none: no row seen yet) and the engine's
    sweep bookkeeping (the partition's newest event time and the last sweep's)."""

    arrays: dict[str, npt.NDArray[Any]]
    watermark_ms: int | None
    swept_ms: int | None


class _Arrays(Protocol):
    def to_arrays(self) -> dict[str, npt.NDArray[Any]]: ...


class SavesPartitions:
    """:meth:`save_partition` and :meth:`load_partition` for an engine keeping per partition a
    state in ``_tables`` (made from arrays by ``_state_from_arrays``) and its sweep bookkeeping
    in ``_watermark_ms`` and ``_swept_ms``."""

    _tables: Mapping[int, _Arrays]
    _watermark_ms: dict[int, int]
    _swept_ms: dict[int, int]
    _state_from_arrays: Callable[[dict[str, npt.NDArray[Any]]], Any]

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        raise NotImplementedError

    def save_partition(self, partition: int) -> SavedPartition:
        """The whole state of ``partition`` (views of the live arrays: write them out before
        the next update). Labels are not part of it (the label book is shared by all)."""
        tables = self._tables.get(partition)
        return SavedPartition(
            tables.to_arrays() if tables is not None else {},
            self._watermark_ms.get(partition),
            self._swept_ms.get(partition),
        )

    def load_partition(self, partition: int, saved: SavedPartition) -> None:
        """Replace the state of ``partition`` by ``saved`` (from :meth:`save_partition` of an
        engine with the same ``state_fingerprint``); ``ValueError`` if it does not fit."""
        self.drop_partitions([partition])
        if saved.arrays:
            self._tables[partition] = self._state_from_arrays(saved.arrays)  # type: ignore[index]
        if saved.watermark_ms is not None:
            self._watermark_ms[partition] = saved.watermark_ms
        if saved.swept_ms is not None:
            self._swept_ms[partition] = saved.swept_ms


def fingerprint(**settings: object) -> str:
    """A short digest of everything that gives saved state its meaning (engine, features,
    windows, TTL, key hash, layout): state saved under another fingerprint is not loaded."""
    text = json.dumps({**settings, "key_hash": KEY_HASH}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def keys_of(ids: list[str]) -> I64:
    """64-bit entity keys of id strings, the same in every process (see the module docstring).

    >>> keys_of(["C1", "C1", "C2"]).tolist()[0] == keys_of(["C1"]).tolist()[0]
    True
    """
    n = len(ids)
    text = "".join(ids)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) == len(text):  # ASCII: a character is a byte
        lengths = np.fromiter(map(len, ids), np.int64, n)
    else:
        encoded = [i.encode("utf-8", "surrogatepass") for i in ids]
        raw = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.int64, n)
    return _fnv(np.frombuffer(raw, np.uint8), np.cumsum(lengths))


@numba.njit(cache=True, nogil=True)
def _fnv(raw: npt.NDArray[np.uint8], ends: I64) -> I64:
    """FNV-1a of each ``raw[ends[i-1]:ends[i]]``, finalised by :func:`_mix`."""
    out = np.empty(len(ends), np.int64)
    start = 0
    for i in range(len(ends)):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(start, ends[i]):
            h = (h ^ np.uint64(raw[j])) * np.uint64(0x100000001B3)
        out[i] = _mix(h)  # type: ignore[arg-type]
        start = ends[i]
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(key: int) -> int:
    """A well-spread 64-bit hash of ``key`` (splitmix64's finaliser)."""
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.int64(z ^ (z >> np.uint64(31)))  # type: ignore[return-value]


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(slot_key: I64, slot_row: I32, key: int) -> int:
    """The slot holding ``key``, or the empty slot where it would go (linear probing)."""
    mask = len(slot_key) - 1
    i = _mix(key) & mask
    while slot_row[i] >= 0 and slot_key[i] != key:
        i = (i + 1) & mask
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _row_of(slot_key: I64, slot_row: I32, meta: I64, counter: int, key: int) -> tuple[int, bool]:
    """The row of ``key`` in a table, and whether it was just claimed (the next free row)."""
    k = _slot(slot_key, slot_row, key)
    row = slot_row[k]
    if row >= 0:
        return row, False
    row = meta[counter]
    meta[counter] += 1
    slot_key[k] = key
    slot_row[k] = row
    return row, True


@numba.njit(cache=True, nogil=True, inline="always")
def _alloc(pool_next: I32, meta: I64, at: int = 0) -> int:
    """A node of the pool whose free list is ``meta[M_FREE + at …]``."""
    node = meta[M_FREE + at]
    if node >= 0:
        meta[M_FREE + at] = pool_next[node]
        meta[M_NFREE + at] -= 1
    else:
        node = meta[M_HIGH + at]
        meta[M_HIGH + at] += 1
    pool_next[node] = -1
    return node  # type: ignore[no-any-return]


@numba.njit(cache=True, nogil=True, inline="always")
def _free(pool_next: I32, meta: I64, node: int, at: int = 0) -> None:
    pool_next[node] = meta[M_FREE + at]
    meta[M_FREE + at] = node
    meta[M_NFREE + at] += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_key(receiver: int, sender: int) -> int:
    return _mix(receiver ^ _mix(sender))


@numba.njit(cache=True, nogil=True)
def _pair_add(pair_key: I64, pair_count: I32, meta: I64, key: int) -> bool:
    """Count one more event of pair ``key``; ``True`` if it was not in the window."""
    mask = len(pair_key) - 1
    i = _mix(key) & mask
    while pair_count[i] > 0:
        if pair_key[i] == key:
            pair_count[i] += 1
            return False
        i = (i + 1) & mask
    pair_key[i] = key
    pair_count[i] = 1
    meta[M_PAIRS] += 1
    return True


@numba.njit(cache=True, nogil=True)
def _pair_remove(pair_key: I64, pair_count: I32, meta: I64, key: int) -> bool:
    """Count one event of pair ``key`` less; ``True`` if none is left (backward-shift delete)."""
    mask = len(pair_key) - 1
    i = _mix(key) & mask
    while pair_key[i] != key or pair_count[i] == 0:
        i = (i + 1) & mask
    pair_count[i] -= 1
    if pair_count[i] > 0:
        return False
    meta[M_PAIRS] -= 1
    j = i
    while True:
        j = (j + 1) & mask
        if pair_count[j] == 0:
            break
        home = _mix(pair_key[j]) & mask
        if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
            continue
        pair_key[i] = pair_key[j]
        pair_count[i] = pair_count[j]
        pair_count[j] = 0
        i = j
    return True


@numba.njit(cache=True, nogil=True)
def _reset_sender(
    s_i4: I32, s_f8: F64, s_i8: I64, row: int, pool_next: I32, recent_next: I32, meta: I64
) -> None:
    node = s_i4[row, S_WHEAD]
    while node >= 0:
        nxt = pool_next[node]
        _free(pool_next, meta, node)
        node = nxt
    node = s_i4[row, S_RHEAD]
    while node >= 0:
        nxt = recent_next[node]
        _free(recent_next, meta, node, _RECENT)
        node = nxt
    s_i8[row, S_LAST] = -1
    s_f8[row, S_TOTAL] = 0.0
    s_f8[row, S_WSUM] = 0.0
    s_i4[row, S_N] = 0
    s_i4[row, S_WHEAD] = -1
    s_i4[row, S_WTAIL] = -1
    s_i4[row, S_WLEN] = 0
    s_i4[row, S_RHEAD] = -1
    s_i4[row, S_RLEN] = 0


@numba.njit(cache=True, nogil=True)
def _drop_received(
    r_i4: I32, r_i8: I64, row: int, cutoff: int, pool_t: I64, pool_v: I64, pool_next: I32,
    meta: I64, pair_key: I64, pair_count: I32,
) -> None:  # fmt: skip
    """Drop the receiver's window events at or before ``cutoff`` (first in, first out)."""
    rkey = r_i8[row, R_KEY]
    node = r_i4[row, R_IHEAD]
    while node >= 0 and pool_t[node] <= cutoff:
        if _pair_remove(pair_key, pair_count, meta, _pair_key(rkey, pool_v[node])):
            r_i4[row, R_DISTINCT] -= 1
        nxt = pool_next[node]
        _free(pool_next, meta, node)
        r_i4[row, R_ILEN] -= 1
        node = nxt
    r_i4[row, R_IHEAD] = node
    if node < 0:
        r_i4[row, R_ITAIL] = -1


@numba.njit(cache=True, nogil=True)
def _reset_receiver(
    r_i4: I32, r_f8: F64, r_i8: I64, row: int, pool_t: I64, pool_v: I64, pool_next: I32,
    meta: I64, pair_key: I64, pair_count: I32,
) -> None:  # fmt: skip
    _drop_received(
        r_i4, r_i8, row, np.iinfo(np.int64).max, pool_t, pool_v, pool_next, meta, pair_key,
        pair_count,
    )  # fmt: skip
    r_i8[row, R_LAST] = -1
    r_i8[row, R_RECV] = -1
    r_f8[row, R_AMOUNT] = 0.0
    r_i4[row, R_DISTINCT] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _sender_row(
    a: int, stale: int, cutoff: int, s_slot_key: I64, s_slot_row: I32, s_i8: I64, s_f8: F64,
    s_i4: I32, pool_t: I64, pool_f: F64, pool_next: I32, recent_next: I32, meta: I64,
) -> int:  # fmt: skip
    """The row of sender ``a``: new, reset when stale, its window pruned to ``> cutoff``."""
    s, new = _row_of(s_slot_key, s_slot_row, meta, M_SENDERS, a)
    if new:
        s_i8[s, S_KEY] = a
        s_i4[s, S_WHEAD] = -1
        s_i4[s, S_RHEAD] = -1
        _reset_sender(s_i4, s_f8, s_i8, s, pool_next, recent_next, meta)
    elif s_i8[s, S_LAST] <= stale:
        _reset_sender(s_i4, s_f8, s_i8, s, pool_next, recent_next, meta)
    elif s_i4[s, S_WLEN] > 0 and pool_t[s_i4[s, S_WTAIL]] <= cutoff:
        node = s_i4[s, S_WHEAD]
        while node >= 0:
            nxt = pool_next[node]
            _free(pool_next, meta, node)
            node = nxt
        s_i4[s, S_WHEAD] = -1
        s_i4[s, S_WTAIL] = -1
        s_i4[s, S_WLEN] = 0
        s_f8[s, S_WSUM] = 0.0
    elif s_i4[s, S_WLEN] > 0 and pool_t[s_i4[s, S_WHEAD]] <= cutoff:
        removed = 0.0
        node = s_i4[s, S_WHEAD]
        while pool_t[node] <= cutoff:
            removed += pool_f[node]
            nxt = pool_next[node]
            _free(pool_next, meta, node)
            s_i4[s, S_WLEN] -= 1
            node = nxt
        s_i4[s, S_WHEAD] = node
        s_f8[s, S_WSUM] -= removed
    return s


@numba.njit(cache=True, nogil=True, inline="always")
def _receiver_row(
    c: int, stale: int, cutoff: int, r_slot_key: I64, r_slot_row: I32, r_i8: I64, r_f8: F64,
    r_i4: I32, pool_t: I64, pool_v: I64, pool_next: I32, pair_key: I64, pair_count: I32,
    meta: I64,
) -> int:  # fmt: skip
    """The row of receiver ``c``: new, reset when stale, its window pruned to ``> cutoff``."""
    r, new = _row_of(r_slot_key, r_slot_row, meta, M_RECEIVERS, c)
    if new:
        r_i8[r, R_KEY] = c
        r_i4[r, R_IHEAD] = -1
        r_i4[r, R_ITAIL] = -1
        r_i4[r, R_ILEN] = 0
        r_i4[r, R_DISTINCT] = 0
        r_i8[r, R_LAST] = -1
        r_i8[r, R_RECV] = -1
        r_f8[r, R_AMOUNT] = 0.0
    elif r_i8[r, R_LAST] <= stale:
        _reset_receiver(r_i4, r_f8, r_i8, r, pool_t, pool_v, pool_next, meta, pair_key, pair_count)
    elif r_i4[r, R_ILEN] > 0 and pool_t[r_i4[r, R_IHEAD]] <= cutoff:
        _drop_received(r_i4, r_i8, r, cutoff, pool_t, pool_v, pool_next, meta, pair_key, pair_count)
    return r


@numba.njit(cache=True, nogil=True, inline="always")
def _recent(
    s: int, c: int, cap: int, s_i4: I32, recent_v: I64, recent_next: I32, meta: I64
) -> float:
    """1.0 if ``c`` is not among sender ``s``'s last ``cap`` distinct counterparties, else 0.0;
    then ``c`` becomes the most recent (the least recent is dropped beyond ``cap``)."""
    prev = -1
    node = s_i4[s, S_RHEAD]
    while node >= 0 and recent_v[node] != c:
        prev = node
        node = recent_next[node]
    if node >= 0:
        new = 0.0
        if prev >= 0:
            recent_next[prev] = recent_next[node]
            recent_next[node] = s_i4[s, S_RHEAD]
            s_i4[s, S_RHEAD] = node
    else:
        new = 1.0
        if s_i4[s, S_RLEN] >= cap:
            before = -1
            last = s_i4[s, S_RHEAD]
            while recent_next[last] >= 0:
                before = last
                last = recent_next[last]
            if before >= 0:
                recent_next[before] = -1
            else:
                s_i4[s, S_RHEAD] = -1
            _free(recent_next, meta, last, _RECENT)
            s_i4[s, S_RLEN] -= 1
        node = _alloc(recent_next, meta, _RECENT)
        recent_v[node] = c
        recent_next[node] = s_i4[s, S_RHEAD]
        s_i4[s, S_RHEAD] = node
        s_i4[s, S_RLEN] += 1
    return new


@numba.njit(cache=True, nogil=True)
def _update(
    times: I64, akeys: I64, ckeys: I64, amounts: F64, receives: npt.NDArray[np.bool_],
    ttl_ms: int, window_ms: int, cap: int,
    s_slot_key: I64, s_slot_row: I32, s_i8: I64, s_f8: F64, s_i4: I32,
    r_slot_key: I64, r_slot_row: I32, r_i8: I64, r_f8: F64, r_i4: I32,
    pool_t: I64, pool_v: I64, pool_f: F64, pool_next: I32, recent_v: I64, recent_next: I32,
    pair_key: I64, pair_count: I32, meta: I64, out: F64,
) -> None:  # fmt: skip
    """Fill ``out[i]`` (the :data:`STATE_COLUMNS`) from earlier rows, then fold row ``i`` in.

    Capacities (rows, slots, pool nodes, pairs) must have room for every row (see ``reserve``).
    """
    for i in range(len(times)):
        t = times[i]
        a = akeys[i]
        c = ckeys[i]
        x = amounts[i]
        cutoff = t - window_ms
        stale = t - ttl_ms
        s = _sender_row(
            a, stale, cutoff, s_slot_key, s_slot_row, s_i8, s_f8, s_i4, pool_t, pool_f,
            pool_next, recent_next, meta,
        )  # fmt: skip
        r = _receiver_row(
            c, stale, cutoff, r_slot_key, r_slot_row, r_i8, r_f8, r_i4, pool_t, pool_v,
            pool_next, pair_key, pair_count, meta,
        )  # fmt: skip
        # money the account itself received earlier
        recv_ms = -1
        recv_amount = 0.0
        got = r_slot_row[_slot(r_slot_key, r_slot_row, a)]
        if got >= 0 and r_i8[got, R_RECV] > stale:
            recv_ms = r_i8[got, R_RECV]
            recv_amount = r_f8[got, R_AMOUNT]
        new = _recent(s, c, cap, s_i4, recent_v, recent_next, meta)
        n = s_i4[s, S_N]
        out[i, 0] = s_i4[s, S_WLEN]
        out[i, 1] = s_f8[s, S_WSUM]
        out[i, 2] = s_f8[s, S_TOTAL] / n if n else 0.0
        out[i, 3] = s_i8[s, S_LAST]
        out[i, 4] = new
        out[i, 5] = recv_ms
        out[i, 6] = recv_amount
        out[i, 7] = r_i4[r, R_ILEN]
        out[i, 8] = r_i4[r, R_DISTINCT]
        # fold the row in
        s_i8[s, S_LAST] = t
        s_i4[s, S_N] = n + 1
        s_f8[s, S_TOTAL] += x
        node = _alloc(pool_next, meta)
        pool_t[node] = t
        pool_f[node] = x
        if s_i4[s, S_WTAIL] >= 0:
            pool_next[s_i4[s, S_WTAIL]] = node
        else:
            s_i4[s, S_WHEAD] = node
        s_i4[s, S_WTAIL] = node
        s_i4[s, S_WLEN] += 1
        s_f8[s, S_WSUM] += x
        r_i8[r, R_LAST] = t
        node = _alloc(pool_next, meta)
        pool_t[node] = t
        pool_v[node] = a
        if r_i4[r, R_ITAIL] >= 0:
            pool_next[r_i4[r, R_ITAIL]] = node
        else:
            r_i4[r, R_IHEAD] = node
        r_i4[r, R_ITAIL] = node
        r_i4[r, R_ILEN] += 1
        if _pair_add(pair_key, pair_count, meta, _pair_key(c, a)):
            r_i4[r, R_DISTINCT] += 1
        if receives[i]:
            r_i8[r, R_RECV] = t
            r_f8[r, R_AMOUNT] = x


@numba.njit(cache=True, nogil=True)
def _sweep(
    stale_ms: int, s_i8: I64, s_f8: F64, s_i4: I32, r_i8: I64, r_f8: F64, r_i4: I32,
    pool_t: I64, pool_v: I64, pool_next: I32, recent_next: I32, pair_key: I64, pair_count: I32,
    meta: I64, keep_s: npt.NDArray[np.bool_], keep_r: npt.NDArray[np.bool_],
) -> None:  # fmt: skip
    """Free the lists of entities idle since ``stale_ms``; ``keep_*`` marks the others."""
    for s in range(meta[M_SENDERS]):
        keep_s[s] = s_i8[s, S_LAST] > stale_ms
        if not keep_s[s]:
            _reset_sender(s_i4, s_f8, s_i8, s, pool_next, recent_next, meta)
    for r in range(meta[M_RECEIVERS]):
        keep_r[r] = r_i8[r, R_LAST] > stale_ms
        if not keep_r[r]:
            _reset_receiver(
                r_i4, r_f8, r_i8, r, pool_t, pool_v, pool_next, meta, pair_key, pair_count
            )


@numba.njit(cache=True, nogil=True)
def _index(keys: I64, slot_key: I64, slot_row: I32) -> None:
    """Fill an empty hash table (``slot_row`` all -1) with ``keys[i] → i``."""
    for row in range(len(keys)):
        k = _slot(slot_key, slot_row, keys[row])
        slot_key[k] = keys[row]
        slot_row[k] = row


@numba.njit(cache=True, nogil=True)
def _reindex_pairs(old_key: I64, old_count: I32, new_key: I64, new_count: I32) -> None:
    mask = len(new_key) - 1
    for j in range(len(old_key)):
        if old_count[j] > 0:
            i = _mix(old_key[j]) & mask
            while new_count[i] > 0:
                i = (i + 1) & mask
            new_key[i] = old_key[j]
            new_count[i] = old_count[j]


def _slots_for(entries: int) -> int:
    """A power of two with ``entries`` at most :data:`_LOAD` of it."""
    return 1 << max(4, int(np.ceil(np.log2(max(entries, 1) / _LOAD))))


def _grown(a: npt.NDArray[np.generic], rows: int) -> npt.NDArray[np.generic]:
    """``a`` with room for ``rows`` rows (grown by a quarter at least, old rows kept)."""
    if len(a) >= rows:
        return a
    out = np.empty((max(rows, len(a) * 5 // 4),) + a.shape[1:], dtype=a.dtype)
    out[: len(a)] = a
    return out


class PartitionState:
    """The feature state of one partition (see the module docstring for the layout)."""

    def __init__(self) -> None:
        self.meta = np.array([0, 0, 0, -1, 0, 0, -1, 0, 0], dtype=np.int64)
        self.s_i8 = np.empty((0, 2), np.int64)
        self.s_f8 = np.empty((0, 2), np.float64)
        self.s_i4 = np.empty((0, 6), np.int32)
        self.r_i8 = np.empty((0, 3), np.int64)
        self.r_f8 = np.empty((0, 1), np.float64)
        self.r_i4 = np.empty((0, 4), np.int32)
        self.s_slot_key, self.s_slot_row = _empty_slots(16)
        self.r_slot_key, self.r_slot_row = _empty_slots(16)
        self.pool_t = np.empty(0, np.int64)
        self.pool_v = np.empty(0, np.int64)
        self.pool_next = np.empty(0, np.int32)
        self.recent_v = np.empty(0, np.int64)
        self.recent_next = np.empty(0, np.int32)
        self.pair_key, self.pair_count = _empty_pairs(16)

    @property
    def senders(self) -> int:
        return int(self.meta[M_SENDERS])

    @property
    def receivers(self) -> int:
        return int(self.meta[M_RECEIVERS])

    def _apply(self, change: Callable[[Any, Any], Any], names: tuple[str, ...], arg: Any) -> None:
        """Replace the arrays ``names`` by ``change(array, arg)``."""
        for name in names:
            setattr(self, name, change(getattr(self, name), arg))

    def nbytes(self) -> int:
        """Bytes of every array held, at its allocated capacity."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The whole state as named arrays (views, not copies): see :meth:`from_arrays`."""
        return state_arrays(self)

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> PartitionState:
        """The state saved by :meth:`to_arrays` (``ValueError`` if the arrays do not fit)."""
        state = cls()
        load_arrays(state, arrays)
        return state

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` more rows: each adds at most one sender, one receiver, two window
        events, one recent counterparty and one pair."""
        m = self.meta
        senders, receivers = int(m[M_SENDERS]) + rows, int(m[M_RECEIVERS]) + rows
        self._apply(_grown, ("s_i8", "s_f8", "s_i4"), senders)
        self._apply(_grown, ("r_i8", "r_f8", "r_i4"), receivers)
        if senders > _LOAD * len(self.s_slot_key):
            self.s_slot_key, self.s_slot_row = _empty_slots(_slots_for(senders))
            _index(self.s_i8[: m[M_SENDERS], S_KEY].copy(), self.s_slot_key, self.s_slot_row)
        if receivers > _LOAD * len(self.r_slot_key):
            self.r_slot_key, self.r_slot_row = _empty_slots(_slots_for(receivers))
            _index(self.r_i8[: m[M_RECEIVERS], R_KEY].copy(), self.r_slot_key, self.r_slot_row)
        nodes = int(m[M_HIGH]) + max(0, 2 * rows - int(m[M_NFREE]))
        recent = int(m[M_HIGH + _RECENT]) + max(0, rows - int(m[M_NFREE + _RECENT]))
        self._apply(_grown, ("recent_v", "recent_next"), recent)
        self._apply(_grown, ("pool_t", "pool_v", "pool_next"), nodes)
        pairs = int(m[M_PAIRS]) + rows
        if pairs > _LOAD * len(self.pair_key):
            key, count = _empty_pairs(_slots_for(pairs))
            _reindex_pairs(self.pair_key, self.pair_count, key, count)
            self.pair_key, self.pair_count = key, count

    def update(
        self,
        times: I64,
        accounts: I64,
        counterparties: I64,
        amounts: F64,
        receives: npt.NDArray[np.bool_],
        ttl_ms: int,
    ) -> F64:
        """Per row, in order: the :data:`STATE_COLUMNS` from earlier rows, then fold it in.

        ``receives[i]``: row ``i`` is money received by its counterparty (TRANSFER / CASH_IN).
        """
        n = len(times)
        out = np.empty((n, len(STATE_COLUMNS)), dtype=np.float64)
        times = np.ascontiguousarray(times, np.int64)
        amounts = np.ascontiguousarray(amounts, np.float64)
        receives = np.ascontiguousarray(receives, np.bool_)
        for lo in range(0, n, _CHUNK):  # reserve per chunk: little headroom for large batches
            hi = min(n, lo + _CHUNK)
            self._reserve(hi - lo)
            _update(
                times[lo:hi], accounts[lo:hi], counterparties[lo:hi], amounts[lo:hi],
                receives[lo:hi], ttl_ms, WINDOW_MS, RECENT_COUNTERPARTIES,
                self.s_slot_key, self.s_slot_row, self.s_i8, self.s_f8, self.s_i4,
                self.r_slot_key, self.r_slot_row, self.r_i8, self.r_f8, self.r_i4,
                self.pool_t, self.pool_v, self.pool_v.view(np.float64), self.pool_next,
                self.recent_v, self.recent_next, self.pair_key, self.pair_count, self.meta,
                out[lo:hi],
            )  # fmt: skip
        return out

    def sweep(self, stale_ms: int) -> int:
        """Forget entities whose last event is at or before ``stale_ms``; returns how many."""
        m = self.meta
        keep_s = np.empty(int(m[M_SENDERS]), np.bool_)
        keep_r = np.empty(int(m[M_RECEIVERS]), np.bool_)
        _sweep(
            stale_ms, self.s_i8, self.s_f8, self.s_i4, self.r_i8, self.r_f8, self.r_i4,
            self.pool_t, self.pool_v, self.pool_next, self.recent_next, self.pair_key,
            self.pair_count, m, keep_s, keep_r,
        )  # fmt: skip
        removed = int(len(keep_s) - keep_s.sum() + len(keep_r) - keep_r.sum())
        if removed:
            self._apply(_kept, ("s_i8", "s_f8", "s_i4"), keep_s)
            self._apply(_kept, ("r_i8", "r_f8", "r_i4"), keep_r)
            m[M_SENDERS], m[M_RECEIVERS] = int(keep_s.sum()), int(keep_r.sum())
            self.s_slot_key, self.s_slot_row = _empty_slots(_slots_for(int(m[M_SENDERS])))
            _index(self.s_i8[: m[M_SENDERS], S_KEY].copy(), self.s_slot_key, self.s_slot_row)
            self.r_slot_key, self.r_slot_row = _empty_slots(_slots_for(int(m[M_RECEIVERS])))
            _index(self.r_i8[: m[M_RECEIVERS], R_KEY].copy(), self.r_slot_key, self.r_slot_row)
        return removed


def state_arrays(state: object) -> dict[str, npt.NDArray[Any]]:
    """Every array attribute of ``state``, by name."""
    return {k: a for k, a in vars(state).items() if isinstance(a, np.ndarray)}


def load_arrays(state: object, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Replace the arrays of a fresh ``state`` by ``arrays``: the same names, dtypes and row
    widths, or ``ValueError`` (a snapshot of another layout)."""
    fresh = state_arrays(state)
    if set(arrays) != set(fresh):
        raise ValueError(f"state arrays {sorted(arrays)} are not {sorted(fresh)}")
    for name, a in arrays.items():
        like = fresh[name]
        if a.dtype != like.dtype or a.shape[1:] != like.shape[1:]:
            raise ValueError(f"state array {name}: {a.dtype}{a.shape}, expected {like.dtype}")
        setattr(state, name, np.ascontiguousarray(a))


def _kept(a: npt.NDArray[np.generic], keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.generic]:
    """The kept rows of ``a`` (its first ``len(keep)``), in order, with no spare capacity."""
    return np.ascontiguousarray(a[: len(keep)][keep])


def _empty_slots(size: int) -> tuple[I64, I32]:
    return np.zeros(size, np.int64), np.full(size, -1, np.int32)


def _empty_pairs(size: int) -> tuple[I64, I32]:
    return np.zeros(size, np.int64), np.zeros(size, np.int32)
