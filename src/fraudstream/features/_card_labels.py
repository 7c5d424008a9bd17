"""The frauds a batch of one partition can read, gathered from a LabelBook as flat arrays.

For each distinct customer and terminal of the rows that has labelled frauds (the book's
``frauds_of``: every transaction some label has called fraud, by the labels' party and time),
its entries with a transaction time before the batch's last ``t - delay``: time, transaction key
(``keys_of`` the id, as the state's keys), partition (CRC-32 of the labelled account, as the
reference's filter; 0 with one partition) and the fraud intervals ``[start, end)`` of its
verdicts. Terminals keep every older entry (the fraud-run features read a terminal's rows back
to its oldest kept one); customers only those of the 30-day window. Rows of entities without
entries get group ``-1``: most rows. The entities with entries are found by one set
intersection; a batch with none of them costs no look-up per row.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from fraudstream.features._card_state import DAY_MS, Frauds
from fraudstream.features._labelbook import LabelBook
from fraudstream.features._state import keys_of

__all__ = ["gather_frauds"]

I64 = npt.NDArray[np.int64]
_CUSTOMER_WINDOW_MS: Final = 30 * DAY_MS


def gather_frauds(
    book: LabelBook,
    customers: Sequence[str],
    terminals: Sequence[str],
    t_min: int,
    t_max: int,
    delay_ms: int,
    partitions: int,
) -> tuple[tuple[I64, I64], Frauds]:
    """Per row its customer's and terminal's group (``-1``: no fraud), and the groups' frauds."""
    off: list[int] = [0]
    e_t: list[int] = []
    e_id: list[str] = []
    hi = t_max - delay_ms
    roles: tuple[tuple[Literal["account", "counterparty"], Sequence[str], int | None], ...] = (
        ("account", customers, t_min - delay_ms - _CUSTOMER_WINDOW_MS),
        ("counterparty", terminals, None),
    )
    rows: list[I64] = []
    for role, names, lo in roles:
        by_entity = book.fraud_entities(role)
        index: dict[str, int] = {}
        for name in sorted(by_entity.keys() & set(names)):  # a set operation, in C
            entries = by_entity[name]
            a = 0 if lo is None else bisect_left(entries, (lo,))
            b = bisect_left(entries, (hi,))
            if a == b:
                continue
            index[name] = len(off) - 1
            e_t += [tt for tt, _ in entries[a:b]]
            e_id += [i for _, i in entries[a:b]]
            off.append(len(e_t))
        if not index:
            rows.append(np.full(len(names), -1, np.int64))
            continue
        get = index.get
        rows.append(np.fromiter((get(k, -1) for k in names), np.int64, len(names)))
    return (rows[0], rows[1]), _arrays(book, off, e_t, e_id, partitions)


def _arrays(
    book: LabelBook, off: list[int], e_t: list[int], e_id: list[str], partitions: int
) -> Frauds:
    """The entries as :data:`~fraudstream.features._card_state.Frauds` arrays."""
    n = len(e_id)
    keys = keys_of(e_id)
    if partitions == 1:
        part = np.zeros(n, np.int64)
    else:
        crc = book.partition_crc
        part = np.fromiter((crc(i) % partitions for i in e_id), np.int64, n)
    iv_off = [0]
    starts: list[int] = []
    ends: list[int] = []
    for i in e_id:
        for start, end, label in book.intervals_of(i):
            if label == 1:
                starts.append(start)
                ends.append(end)
        iv_off.append(len(starts))
    g_off = np.array(off, np.int64)
    group = np.repeat(np.arange(len(off) - 1), np.diff(g_off))
    by_key = np.lexsort((keys, group)).astype(np.int64)
    return (
        g_off,
        np.array(e_t, np.int64),
        keys,
        part,
        np.array(iv_off, np.int64),
        np.array(starts, np.int64),
        np.array(ends, np.int64),
        by_key,
        keys[by_key],
    )
