"""Per-entity state and the one per-record loop: read features from earlier rows, then update.

Everything here is plain Python on purpose: the loop is the only per-record work of the feature
engine, so it touches each entity once, keeps windows as short sorted lists and allocates little.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

__all__ = [
    "RECENT_COUNTERPARTIES",
    "STATE_COLUMNS",
    "WINDOW_MS",
    "Receiver",
    "Sender",
    "StateTables",
    "sweep",
    "update_rows",
]

#: Length of the sliding event-time windows (the ``_1h`` features).
WINDOW_MS: Final = 3_600_000
#: How many distinct recent counterparties an account remembers (least recently used dropped).
RECENT_COUNTERPARTIES: Final = 16
#: The raw per-row values :func:`update_rows` returns, in order (``-1`` = no earlier event).
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


class Sender:
    """An account's history as the origin of transactions."""

    __slots__ = ("last_ms", "n", "total", "win_t", "win_a", "win_sum", "recent")

    def __init__(self) -> None:
        self.last_ms = -1
        self.n = 0
        self.total = 0.0
        self.win_t: list[int] = []
        self.win_a: list[float] = []
        self.win_sum = 0.0
        self.recent: dict[str, None] = {}


class Receiver:
    """An entity's history as the destination (counterparty) of transactions."""

    __slots__ = ("last_ms", "recv_ms", "recv_amount", "in_t", "in_s", "in_counts")

    def __init__(self) -> None:
        self.last_ms = -1
        self.recv_ms = -1
        self.recv_amount = 0.0
        self.in_t: list[int] = []
        self.in_s: list[str] = []
        self.in_counts: dict[str, int] = {}


StateTables = tuple[dict[str, Sender], dict[str, Receiver]]


def _prune_sender(s: Sender, cutoff: int) -> None:
    """Drop window entries at or before ``cutoff`` (times are sorted per account)."""
    k = bisect_right(s.win_t, cutoff)
    s.win_sum -= sum(s.win_a[:k])
    del s.win_t[:k]
    del s.win_a[:k]


def _prune_receiver(r: Receiver, cutoff: int) -> None:
    """Drop window entries at or before ``cutoff``, first in first out."""
    k = bisect_right(r.in_t, cutoff)
    counts = r.in_counts
    for sender in r.in_s[:k]:
        left = counts[sender] - 1
        if left:
            counts[sender] = left
        else:
            del counts[sender]
    del r.in_t[:k]
    del r.in_s[:k]


def update_rows(
    tables: StateTables,
    times: list[int],
    accounts: list[str],
    counterparties: list[str],
    amounts: list[float],
    receives: list[bool],
    ttl_ms: int,
) -> list[float]:
    """Per row, in order: the :data:`STATE_COLUMNS` from earlier rows, then fold the row in.

    Returns the values flat, row after row (reshape to ``(-1, len(STATE_COLUMNS))``).

    ``receives[i]`` says whether row ``i`` counts as money received by its counterparty
    (TRANSFER / CASH_IN). State idle for ``ttl_ms`` or longer is treated as absent.
    """
    senders, receivers = tables
    out: list[float] = []
    put = out.extend
    window_ms = WINDOW_MS
    cap = RECENT_COUNTERPARTIES
    for t, a, c, x, rc in zip(times, accounts, counterparties, amounts, receives, strict=True):
        cutoff = t - window_ms
        stale = t - ttl_ms
        s = senders.get(a)
        if s is None or s.last_ms <= stale:
            s = senders[a] = Sender()
        elif s.win_t[-1] <= cutoff:
            s.win_t.clear()
            s.win_a.clear()
            s.win_sum = 0.0
        elif s.win_t[0] <= cutoff:
            _prune_sender(s, cutoff)
        r = receivers.get(c)
        if r is None or r.last_ms <= stale:
            r = receivers[c] = Receiver()
        elif r.in_t[-1] <= cutoff:
            r.in_t.clear()
            r.in_s.clear()
            r.in_counts.clear()
        elif r.in_t[0] <= cutoff:
            _prune_receiver(r, cutoff)
        got = receivers.get(a)
        if got is None or got.recv_ms <= stale:
            recv_ms, recv_amount = -1, 0.0
        else:
            recv_ms, recv_amount = got.recv_ms, got.recv_amount
        recent = s.recent
        if c in recent:
            del recent[c]
            new = 0
        else:
            new = 1
            if len(recent) >= cap:
                del recent[next(iter(recent))]
        recent[c] = None
        n = s.n
        win_t = s.win_t
        counts = r.in_counts
        put(
            (
                len(win_t),
                s.win_sum,
                s.total / n if n else 0.0,
                s.last_ms,
                new,
                recv_ms,
                recv_amount,
                len(r.in_t),
                len(counts),
            )
        )
        s.last_ms = t
        s.n = n + 1
        s.total += x
        win_t.append(t)
        s.win_a.append(x)
        s.win_sum += x
        r.last_ms = t
        r.in_t.append(t)
        r.in_s.append(a)
        counts[a] = counts.get(a, 0) + 1
        if rc:
            r.recv_ms = t
            r.recv_amount = x
    return out


def sweep(tables: StateTables, stale_ms: int) -> int:
    """Forget entities whose last event is at or before ``stale_ms``; returns how many."""
    removed = 0
    for table in tables:
        gone = [k for k, v in table.items() if v.last_ms <= stale_ms]
        for k in gone:
            del table[k]
        removed += len(gone)
    return removed
