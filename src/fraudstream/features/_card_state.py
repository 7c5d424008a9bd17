"""Card state of one partition as columnar arrays, updated row by row by a compiled kernel.

Per customer: running sums of amounts and squared amounts and a running count of "high"
amounts (never rebased, as the reference's cumulative lists), the last time, and its rows of the
last 30 days (time, amount, terminal key, the running values before the row). Per terminal: its
rows (time, transaction key), trimmed exactly as the reference trims them (more than
:data:`TRIM_ROWS` rows and the rows older than ``delay + 90 d`` more than half of them), because
the fraud-run features read a terminal's rows back to its oldest kept one.

Layout: two open-addressing hash tables (customers, terminals: 64-bit key → row of fixed
columns), and two arenas holding each entity's rows as one contiguous block (``beg`` ≤ ``head``
≤ ``end`` ≤ ``cap``); a full block is slid down over its dead rows or moved, doubled, to the
arena's end. The kernel stops at a row whose block does not fit; the caller grows or compacts the
arena and calls again from that row. An entity idle for the TTL is reset when next seen (as if
new) and freed by :meth:`CardState.sweep`.

Label features read the frauds a :mod:`~fraudstream.features._card_labels` gather hands over:
per entity (row's ``tg`` / ``cg``), fraud entries ``(tx time, tx key, partition)`` sorted by time,
each with its fraud intervals ``[start, end)`` (fraud at ``t`` = some interval holds ``t``).
"""

from __future__ import annotations

from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from fraudstream.features._state import (
    _empty_slots,
    _grown,
    _index,
    _row_of,
    _slots_for,
    load_arrays,
    state_arrays,
)

__all__ = ["MISSING", "STATE_WIDTH", "TRIM_ROWS", "CardState", "Frauds"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

DAY_MS: Final = 86_400_000
#: Stateful columns per row (12 of the handbook's, 15 of ours; see ``_card``).
STATE_WIDTH: Final = 27
#: A terminal's rows are trimmed (reference rule) only when it keeps more than this many.
TRIM_ROWS: Final = 512
_NONE: Final = -(2**63)  # no last time
#: The key of an absent categorical value (``CardExtras.encode`` never gives it another).
MISSING: Final = 0
_NEVER_S: Final = 30 * 86_400.0
_NEVER_D: Final = 90.0
_HIGH_RATIO: Final = 3.0

# customers: int64 [key, last, high count, block beg, head, end, cap]; float64 [sum, sum of squares]
C_KEY, C_LAST, C_H, C_BEG, C_HEAD, C_END, C_CAP = 0, 1, 2, 3, 4, 5, 6
C_S, C_Q = 0, 1
# customer arena: int64 [time, terminal key, high count before, then one key per categorical
# extra field (:data:`MISSING` when absent)]; float64 [amount, sum before, squares before, the
# block's live amounts sorted]
A_T, A_M, A_H, A_CAT = 0, 1, 2, 3
A_X, A_S, A_Q, A_SRT = 0, 1, 2, 3
# terminals: int64 [key, last, block beg, head, end, cap]; arena int64 [time, tx key]
T_KEY, T_LAST, T_BEG, T_HEAD, T_END, T_CAP = 0, 1, 2, 3, 4, 5
B_T, B_K = 0, 1
# meta: customers, terminals, customer arena used, terminal arena used
M_CUST, M_TERM, M_CUSED, M_TUSED = 0, 1, 2, 3
_MIN_BLOCK: Final = 8

#: per-batch frauds: group offsets; per entry (by time within a group) time, transaction key,
#: partition, offset of its intervals; interval starts and ends; the entries by key within a
#: group (their index, their key)
Frauds = tuple[I64, I64, I64, I64, I64, I64, I64, I64, I64]


@numba.njit(cache=True, nogil=True, inline="always")
def _left(a: I64, col: int, lo: int, hi: int, v: int) -> int:
    """First index in ``[lo, hi)`` with ``a[i, col] >= v`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid, col] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, inline="always")
def _right(a: I64, col: int, lo: int, hi: int, v: int) -> int:
    """First index in ``[lo, hi)`` with ``a[i, col] > v`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid, col] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _room(ent: I64, r: int, b: int, arenas: tuple[I64, F64], meta: I64, used: int) -> bool:
    """Room for one more row in entity ``r``'s block (columns from ``b``: beg, head, end, cap):
    slide it over its dead rows or move it, doubled, to the arena's end; ``False`` if the arena
    is full."""
    beg, head, end, cap = ent[r, b], ent[r, b + 1], ent[r, b + 2], ent[r, b + 3]
    if end < cap:
        return True
    live = end - head
    ai, af = arenas
    if head - beg >= (cap - beg) // 2 and head > beg:
        ai[beg : beg + live] = ai[head:end]
        af[beg : beg + live] = af[head:end]
        ent[r, b + 1], ent[r, b + 2] = beg, beg + live
        return True
    size = max(_MIN_BLOCK, 2 * (cap - beg))
    at = meta[used]
    if at + size > len(ai):
        return False
    ai[at : at + live] = ai[head:end]
    af[at : at + live] = af[head:end]
    ent[r, b], ent[r, b + 1], ent[r, b + 2], ent[r, b + 3] = at, at, at + live, at + size
    meta[used] = at + size
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _fraud_at(e_ivo: I64, iv_s: I64, iv_e: I64, e: int, t: int) -> bool:
    for j in range(e_ivo[e], e_ivo[e + 1]):  # noqa: SIM110 (a compiled loop, no generator)
        if iv_s[j] <= t < iv_e[j]:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _row_fraud(fr: Frauds, g: int, key: int, t: int) -> bool:
    """Whether the transaction ``key`` (a row of the group's terminal) is fraud at ``t``."""
    if g < 0:
        return False
    g_off, _, _, _, e_ivo, iv_s, iv_e, by_key, sorted_key = fr
    lo, hi = g_off[g], g_off[g + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_key[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo == g_off[g + 1] or sorted_key[lo] != key:
        return False
    return _fraud_at(e_ivo, iv_s, iv_e, by_key[lo], t)


@numba.njit(cache=True, nogil=True)
def _fraud_times(
    fr: Frauds, g: int, lo: int, hi: int, t: int, part: int, wins: I64, counts: I64
) -> int:
    """Count the group's entries of ``part`` with time in ``[lo, hi)`` fraud at ``t``: in
    ``counts[j]`` those at or after ``hi - wins[j]``, ``counts[-1]`` all; returns the latest
    time (``_NONE`` if none)."""
    counts[:] = 0
    latest = _NONE
    if g < 0:
        return latest
    g_off, e_t, _, e_part, e_ivo, iv_s, iv_e, _, _ = fr
    first, stop = g_off[g], g_off[g + 1]
    while first < stop:  # the group's first entry at or after lo (entries by time)
        mid = (first + stop) >> 1
        if e_t[mid] < lo:
            first = mid + 1
        else:
            stop = mid
    for e in range(first, g_off[g + 1]):
        tt = e_t[e]
        if tt >= hi:
            break
        if e_part[e] != part or not _fraud_at(e_ivo, iv_s, iv_e, e, t):
            continue
        counts[-1] += 1
        latest = max(latest, tt)
        for j in range(len(wins)):
            if tt >= hi - wins[j]:
                counts[j] += 1
    return latest


@numba.njit(cache=True, nogil=True)
def _amount_profile(
    srt: F64, x: float, s: float, q: float, s0: float, q0: float
) -> tuple[float, float, float]:
    """Max, ``x`` / median, ``x``'s z-score over sorted ``srt`` (the reference's arithmetic)."""
    n = len(srt)
    if n == 0:
        return 0.0, 0.0, 0.0
    med = (srt[(n - 1) // 2] + srt[n // 2]) / 2.0
    mean = (s - s0) / n
    var = max((q - q0) / n - mean * mean, 0.0)
    zscore = (x - mean) / max(var**0.5, 1.0) if n >= 2 else 0.0
    return srt[-1], x / med if med >= 0.01 else 0.0, zscore


@numba.njit(cache=True, nogil=True)
def _expire(ca_i8: I64, ca_f8: F64, head: int, end: int, cut: int) -> int:
    """Drop the rows at or before ``cut`` from the block's front and their amounts from the
    sorted column; returns the new head."""
    while head < end and ca_i8[head, A_T] <= cut:
        v = ca_f8[head, A_X]
        lo, hi = head, end
        while lo < hi:  # the first sorted position holding v
            mid = (lo + hi) >> 1
            if ca_f8[mid, A_SRT] < v:
                lo = mid + 1
            else:
                hi = mid
        for j in range(min(lo, end - 1), head, -1):  # close the gap from the front
            ca_f8[j, A_SRT] = ca_f8[j - 1, A_SRT]
        head += 1
    return head


@numba.njit(cache=True, nogil=True)
def _insert_sorted(ca_f8: F64, head: int, end: int, x: float) -> None:
    """Put ``x`` into the sorted column of ``[head, end]`` (after its equals)."""
    j = end
    while j > head and ca_f8[j - 1, A_SRT] > x:
        ca_f8[j, A_SRT] = ca_f8[j - 1, A_SRT]
        j -= 1
    ca_f8[j, A_SRT] = x


@numba.njit(cache=True, nogil=True)
def _customer(
    r: int, t: int, m: int, x: float, cat: I64, c_i8: I64, c_f8: F64, ca_i8: I64, ca_f8: F64,
    o: F64,
) -> None:  # fmt: skip
    """The row's customer columns into ``o``; then the row is appended to the customer."""
    end = c_i8[r, C_END]
    head = _expire(ca_i8, ca_f8, c_i8[r, C_HEAD], end, t - 30 * DAY_MS)
    c_i8[r, C_HEAD] = head
    if len(cat):
        _categories(ca_i8, head, end, _right(ca_i8, A_T, head, end, t - DAY_MS), cat, o)
    s, q, h = c_f8[r, C_S], c_f8[r, C_Q], c_i8[r, C_H]
    prof = _amount_profile(ca_f8[head:end, A_SRT], x, s, q, ca_f8[head, A_S], ca_f8[head, A_Q])
    n_prev = end - head
    k14 = _right(ca_i8, A_T, head, end, t - 14 * DAY_MS)
    high_14d = h - ca_i8[k14, A_H] if k14 < end else 0
    last = c_i8[r, C_LAST]
    seen = False
    for j in range(head, end):
        if ca_i8[j, A_M] == m:
            seen = True
            break
    ca_i8[end, A_T], ca_i8[end, A_M], ca_i8[end, A_H] = t, m, h
    ca_i8[end, A_CAT : A_CAT + len(cat)] = cat
    ca_f8[end, A_X], ca_f8[end, A_S], ca_f8[end, A_Q] = x, s, q
    _insert_sorted(ca_f8, head, end, x)
    s += x
    q += x * x
    if n_prev >= 3 and prof[1] > _HIGH_RATIO:
        h += 1
    end += 1
    c_f8[r, C_S], c_f8[r, C_Q], c_i8[r, C_H], c_i8[r, C_END], c_i8[r, C_LAST] = s, q, h, end, t
    for j, w in enumerate((DAY_MS, 7 * DAY_MS, 30 * DAY_MS)):
        k = _right(ca_i8, A_T, head, end, t - w)
        o[2 * j] = end - k
        o[2 * j + 1] = (s - ca_f8[k, A_S]) / (end - k)
    o[12] = prof[0]
    o[13] = _NEVER_S if last == _NONE else min((t - last) / 1000.0, _NEVER_S)
    o[14] = end - _right(ca_i8, A_T, head, end, t - 3_600_000)
    o[15] = 0.0 if seen else 1.0
    o[20], o[21], o[22] = prof[1], prof[2], high_14d


@numba.njit(cache=True, nogil=True)
def _categories(ca_i8: I64, head: int, end: int, k1: int, cat: I64, o: F64) -> None:
    """Per categorical extra ``j`` (key ``cat[j]``), into ``o[STATE_WIDTH + 2j]`` the share of the
    customer's earlier rows of the last 30 days (``[head, end)``) with this row's value (NaN:
    no earlier row, or the value is missing), and into ``o[STATE_WIDTH + 2j + 1]`` the distinct
    values of the last day's rows (``[k1, end)``) and this row (missing values not counted)."""
    n = end - head
    for j in range(len(cat)):
        col, key = A_CAT + j, cat[j]
        same = 0
        for i in range(head, end):
            same += ca_i8[i, col] == key
        o[STATE_WIDTH + 2 * j] = same / n if n > 0 and key != MISSING else np.nan
        distinct = 1 if key != MISSING else 0
        for i in range(k1, end):
            v = ca_i8[i, col]
            if v == MISSING or v == key:  # noqa: SIM109 (compiled)
                continue
            first = True
            for i2 in range(k1, i):
                if ca_i8[i2, col] == v:
                    first = False
                    break
            distinct += first
        o[STATE_WIDTH + 2 * j + 1] = distinct


@numba.njit(cache=True, nogil=True)
def _terminal(
    r: int, t: int, key: int, delay: int, tg: int, fr: Frauds, part: int, t_i8: I64,
    tb_i8: I64, o: F64, wins: I64, counts: I64,
) -> None:  # fmt: skip
    """The row's terminal columns into ``o``; then the row is appended to the terminal."""
    head, end = t_i8[r, T_HEAD], t_i8[r, T_END]
    hi = _left(tb_i8, B_T, head, end, t - delay)
    long_ms = 90 * DAY_MS
    latest = _fraud_times(fr, tg, t - delay - long_ms, t - delay, t, part, wins[:3], counts)
    for j in range(3):
        nb = hi - _left(tb_i8, B_T, head, end, t - delay - wins[j])
        o[6 + 2 * j] = nb
        o[7 + 2 * j] = counts[j] / nb if nb else 0.0
    nb = hi - _left(tb_i8, B_T, head, end, t - delay - long_ms)
    o[16] = end - _right(tb_i8, B_T, head, end, t - DAY_MS)
    o[17] = counts[3]
    o[18] = counts[3] / nb if nb else 0.0
    k = hi
    while k > head and _row_fraud(fr, tg, tb_i8[k - 1, B_K], t):
        k -= 1
    o[23] = hi - k
    o[24] = (t - tb_i8[k, B_T]) / DAY_MS if hi > k else _NEVER_D
    o[25] = min((t - latest) / DAY_MS, _NEVER_D) if latest != _NONE else _NEVER_D
    five = min(hi - head, 5)
    last5 = 0
    for j in range(hi - five, hi):
        last5 += _row_fraud(fr, tg, tb_i8[j, B_K], t)
    o[26] = last5 / five if five else 0.0
    tb_i8[end, B_T], tb_i8[end, B_K] = t, key
    end += 1
    t_i8[r, T_END], t_i8[r, T_LAST] = end, t
    if end - head > TRIM_ROWS:  # the reference's trim, to its letter
        cut = _left(tb_i8, B_T, head, end, t - delay - long_ms) - head
        if cut > 64 and 2 * cut > end - head:
            t_i8[r, T_HEAD] = head + cut


@numba.njit(cache=True, nogil=True)
def _entity(slot_key: I64, slot_row: I32, ent: I64, meta: I64, which: int, key: int,
            stale: int, b: int, last: int) -> int:  # fmt: skip
    """The row of ``key``: claimed with an empty block when new, emptied when stale."""
    r, new = _row_of(slot_key, slot_row, meta, which, key)
    if new:
        ent[r, :] = 0
        ent[r, 0] = key
    if new or ent[r, last] <= stale:
        ent[r, last] = _NONE
        ent[r, b + 1] = ent[r, b + 2] = ent[r, b]
        return -1 - r
    return r


@numba.njit(cache=True, nogil=True)
def _update(
    start: int, times: I64, cust: I64, term: I64, txk: I64, amounts: F64, cats: I64, cg: I64,
    tg: I64,
    fr: Frauds, part: int, delay: int, ttl: int, c_slot_key: I64, c_slot_row: I32, c_i8: I64,
    c_f8: F64, ca_i8: I64, ca_f8: F64, t_slot_key: I64, t_slot_row: I32, t_i8: I64,
    tb_i8: I64, meta: I64, out: F64,
) -> int:  # fmt: skip
    """Rows ``start…`` in order: their state columns into ``out``, then fold them in. Returns
    the row it stopped at (``len(times)`` when done; earlier when an arena is full)."""
    wins = np.array([DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS], dtype=np.int64)
    counts = np.zeros(4, dtype=np.int64)
    tb_f8 = np.empty((0, 1), dtype=np.float64)  # a terminal's rows have no float column
    for i in range(start, len(times)):
        t = times[i]
        c = _entity(c_slot_key, c_slot_row, c_i8, meta, M_CUST, cust[i], t - ttl, C_BEG, C_LAST)
        if c < 0:
            c = -1 - c
            c_f8[c, C_S] = c_f8[c, C_Q] = 0.0
            c_i8[c, C_H] = 0
        m = _entity(t_slot_key, t_slot_row, t_i8, meta, M_TERM, term[i], t - ttl, T_BEG, T_LAST)
        m = m if m >= 0 else -1 - m
        if not _room(c_i8, c, C_BEG, (ca_i8, ca_f8), meta, M_CUSED):
            return i
        if not _room(t_i8, m, T_BEG, (tb_i8, tb_f8), meta, M_TUSED):
            return i
        o = out[i]
        _customer(c, t, term[i], amounts[i], cats[i], c_i8, c_f8, ca_i8, ca_f8, o)
        _terminal(m, t, txk[i], delay, tg[i], fr, part, t_i8, tb_i8, o, wins, counts)
        o[19] = _customer_frauds(fr, cg[i], t, delay, part, counts)
    return len(times)


@numba.njit(cache=True, nogil=True)
def _customer_frauds(fr: Frauds, g: int, t: int, delay: int, part: int, counts: I64) -> int:
    wins = np.zeros(0, dtype=np.int64)
    _fraud_times(fr, g, t - delay - 30 * DAY_MS, t - delay, t, part, wins, counts[:1])
    return int(counts[0])


@numba.njit(cache=True, nogil=True)
def _compact(ent: I64, n: int, b: int, ai: I64, af: F64, new_i: I64, new_f: F64) -> int:
    """Copy the live rows of entities ``0…n-1`` into the new arena, each block twice its rows
    (at least :data:`_MIN_BLOCK`); returns the new arena's used size."""
    at = 0
    for r in range(n):
        head, end = ent[r, b + 1], ent[r, b + 2]
        live = end - head
        size = max(_MIN_BLOCK, 2 * live)
        new_i[at : at + live] = ai[head:end]
        if af.shape[0]:
            new_f[at : at + live] = af[head:end]
        ent[r, b], ent[r, b + 1], ent[r, b + 2], ent[r, b + 3] = at, at, at + live, at + size
        at += size
    return at


class CardState:
    """The card state of one partition (see the module docstring for the layout)."""

    def __init__(self, categoricals: int = 0) -> None:
        self.meta = np.zeros(4, dtype=np.int64)
        self.c_i8 = np.zeros((0, 7), np.int64)
        self.c_f8 = np.zeros((0, 2), np.float64)
        self.t_i8 = np.zeros((0, 6), np.int64)
        self.ca_i8 = np.zeros((1024, A_CAT + categoricals), np.int64)
        self.ca_f8 = np.zeros((1024, 4), np.float64)
        self.tb_i8 = np.zeros((1024, 2), np.int64)
        self.c_slot_key, self.c_slot_row = _empty_slots(16)
        self.t_slot_key, self.t_slot_row = _empty_slots(16)

    @property
    def customers(self) -> int:
        return int(self.meta[M_CUST])

    @property
    def terminals(self) -> int:
        return int(self.meta[M_TERM])

    def nbytes(self) -> int:
        """Bytes of every array held, at its allocated capacity."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The whole state as named arrays (views, not copies): see :meth:`from_arrays`."""
        return state_arrays(self)

    @property
    def categoricals(self) -> int:
        """Categorical extra fields whose values the customers' rows keep."""
        return int(self.ca_i8.shape[1]) - A_CAT

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]], categoricals: int = 0) -> CardState:
        """The state saved by :meth:`to_arrays` (``ValueError`` if the arrays do not fit)."""
        state = cls(categoricals)
        load_arrays(state, arrays)
        return state

    def customer_bytes(self) -> int:
        """Bytes of the customers' arrays (table, rows, arena), at capacity."""
        names = ("c_i8", "c_f8", "ca_i8", "ca_f8", "c_slot_key", "c_slot_row")
        return sum(getattr(self, k).nbytes for k in names)

    def update(
        self,
        times: I64,
        cust: I64,
        term: I64,
        txk: I64,
        amounts: F64,
        groups: tuple[I64, I64],
        frauds: Frauds,
        part: int,
        delay_ms: int,
        ttl_ms: int,
        cats: I64 | None = None,
    ) -> F64:
        """Per row, in order: the state columns from earlier rows (and the frauds), then fold
        the row in. ``groups``: per row its customer's and terminal's group in ``frauds``.
        ``cats``: per row the key of each categorical extra (:attr:`categoricals` columns),
        whose two aggregates follow the :data:`STATE_WIDTH` columns."""
        n = len(times)
        k = self.categoricals
        if cats is None:
            cats = np.zeros((n, k), np.int64)
        if cats.shape != (n, k):
            raise ValueError(f"cats must have shape {(n, k)}, got {cats.shape}")
        out = np.empty((n, STATE_WIDTH + 2 * k), dtype=np.float64)
        self._reserve(n)
        done = 0
        while done < n:
            done = _update(
                done, times, cust, term, txk, amounts, cats, groups[0], groups[1], frauds, part,
                delay_ms, ttl_ms, self.c_slot_key, self.c_slot_row, self.c_i8, self.c_f8,
                self.ca_i8, self.ca_f8, self.t_slot_key, self.t_slot_row, self.t_i8,
                self.tb_i8, self.meta, out,
            )  # fmt: skip
            if done < n:
                self._make_room()
        return out

    def _reserve(self, rows: int) -> None:
        """Rows and hash slots for ``rows`` more customers and terminals."""
        m = self.meta
        for which, ent, keys in ((M_CUST, "c_i8", "c_slot_key"), (M_TERM, "t_i8", "t_slot_key")):
            need = int(m[which]) + rows
            setattr(self, ent, _grown(getattr(self, ent), need))
            if which == M_CUST:
                self.c_f8 = _grown(self.c_f8, need)  # type: ignore[assignment]
            if need > 0.75 * len(getattr(self, keys)):
                self._reindex(which, _slots_for(need))

    def _reindex(self, which: int, slots: int) -> None:
        key, row = _empty_slots(slots)
        ent = self.c_i8 if which == M_CUST else self.t_i8
        _index(ent[: self.meta[which], 0].copy(), key, row)
        if which == M_CUST:
            self.c_slot_key, self.c_slot_row = key, row
        else:
            self.t_slot_key, self.t_slot_row = key, row

    def _make_room(self) -> None:
        """Compact both arenas; double one that would still be more than half full."""
        m = self.meta
        for which, ent, used, ai, af in ((M_CUST, "c_i8", M_CUSED, "ca_i8", "ca_f8"),
                                         (M_TERM, "t_i8", M_TUSED, "tb_i8", "")):  # fmt: skip
            rows = getattr(self, ent)
            n = int(m[which])
            b = C_BEG if which == M_CUST else T_BEG
            live = int((rows[:n, b + 2] - rows[:n, b + 1]).sum())
            size = len(getattr(self, ai))
            size = max(size, 2 * (2 * live + _MIN_BLOCK * n + 2 * _MIN_BLOCK))
            old_f = getattr(self, af) if af else np.empty((0, 1))
            new_i = np.zeros((size, getattr(self, ai).shape[1]), np.int64)
            new_f = np.zeros((size if af else 0, old_f.shape[1]), np.float64)
            m[used] = _compact(rows, n, b, getattr(self, ai), old_f, new_i, new_f)
            setattr(self, ai, new_i)
            if af:
                setattr(self, af, new_f)

    def sweep(self, stale_ms: int) -> int:
        """Forget entities whose last row is at or before ``stale_ms``; returns how many."""
        m = self.meta
        removed = 0
        for which, ent, last in ((M_CUST, "c_i8", C_LAST), (M_TERM, "t_i8", T_LAST)):
            rows = getattr(self, ent)
            n = int(m[which])
            keep = rows[:n, last] > stale_ms
            gone = n - int(keep.sum())
            if not gone:
                continue
            removed += gone
            setattr(self, ent, np.ascontiguousarray(rows[:n][keep]))
            if which == M_CUST:
                self.c_f8 = np.ascontiguousarray(self.c_f8[:n][keep])
            m[which] = n - gone
            self._reindex(which, _slots_for(int(m[which])))
        if removed:
            self._make_room()
        return removed
