"""Labels as a bank receives them: late, from several channels, and not for every fraud.

:func:`simulate_labels` is pure: given simulated transactions (ids, accounts, event times, the
robots' ``isFraud``) and their positions in the stream, it returns the label records a bank would
receive, with ``labelled_at_ms`` = event time + a delay drawn from :class:`LabelMix`, and the
transaction's account, counterparty and event time (``tx_time_ms``: label features are kept per
entity, so a detector needs them). Each
transaction's draws come from a hash of (seed, its position), so the labels are the same however
the stream is cut into batches, and the file and the live stream of one seed agree.

The simulator does not know which transactions the detector alerted on, so the mix models the
outcome: a share of frauds is confirmed by an analyst within hours (as if alerted and reviewed), a
share comes back as a chargeback after 2-60 days, the rest is never reported; and a small share of
genuine transactions is disputed by its own customer (friendly fraud: a fraud label on a genuine
transaction). Delays are log-logistic (closed-form quantiles), truncated to ``[min_ms, max_ms]``.

:class:`PendingLabels` holds labels until the stream's event time reaches their label time;
:class:`LiveLabels` releases each label just before the first transaction at or after its label
time (the live simulator and file replay produce it then).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraudstream.errors import ConfigError
from fraudstream.schema import CardRecord, LabelMessage, LabelSource, PaySimRecord, TxBatch

__all__ = [
    "LABEL_COLUMNS",
    "Delay",
    "LabelMix",
    "LiveLabels",
    "PendingLabels",
    "batch_labels",
    "label_table",
    "simulate_labels",
]

_MIN: Final = 60_000
_HOUR: Final = 3_600_000
_DAY: Final = 86_400_000
#: The columns of a labels file (the label record's fields, read back by ``labels import``).
LABEL_COLUMNS: Final = (
    "label_id",
    "tx_id",
    "account",
    "counterparty",
    "tx_time_ms",
    "label",
    "source",
    "labelled_at_ms",
    "reason",
)
_REASONS: Final[dict[str, str]] = {
    "analyst": "simulated analyst verdict after review",
    "chargeback": "simulated chargeback",
    "dispute": "simulated customer dispute",
}


@dataclass(frozen=True)
class Delay:
    """A delay distribution: log-logistic with median ``median_ms`` and shape ``shape`` (larger:
    narrower), truncated to ``[min_ms, max_ms]``."""

    median_ms: float
    shape: float
    min_ms: float
    max_ms: float

    def __post_init__(self) -> None:
        if not (0 < self.min_ms <= self.median_ms <= self.max_ms and self.shape > 0):
            raise ConfigError(f"delay needs 0 < min_ms <= median_ms <= max_ms, shape > 0: {self}")

    def cdf(self, x_ms: float) -> float:
        """The untruncated distribution's CDF at ``x_ms``."""
        return float(1.0 / (1.0 + (x_ms / self.median_ms) ** -self.shape))

    def quantile(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Delays (ms) for uniforms ``u`` in [0, 1), inside ``[min_ms, max_ms]``."""
        lo, hi = self.cdf(self.min_ms), self.cdf(self.max_ms)
        p = lo + u * (hi - lo)
        out = self.median_ms * (p / (1.0 - p)) ** (1.0 / self.shape)
        return np.clip(out, self.min_ms, self.max_ms)


@dataclass(frozen=True)
class LabelMix:
    """Who reports what, and how late. Fraud shares add up to at most 1; the rest is unreported.

    The defaults model a bank whose analysts review alerts within hours and catch 40 % of frauds
    that way; 45 % come back as chargebacks after 2-60 days (median 3 weeks); 15 % are never
    reported; 5 in 10,000 genuine transactions are disputed by their own customer.
    """

    #: Frauds confirmed by an analyst (source ``analyst``, verdict fraud).
    analyst_share: float = 0.40
    #: Frauds reported by a chargeback (source ``chargeback``, verdict fraud).
    chargeback_share: float = 0.45
    #: Genuine transactions disputed by the customer (source ``dispute``, verdict fraud).
    dispute_share: float = 0.0005
    #: Analyst verdicts: median 2 h, from 5 min to 24 h after the transaction.
    analyst_delay: Delay = field(default=Delay(2 * _HOUR, 2.0, 5 * _MIN, 24 * _HOUR))
    #: Chargebacks: median 21 days, from 2 to 60 days.
    chargeback_delay: Delay = field(default=Delay(21 * _DAY, 3.0, 2 * _DAY, 60 * _DAY))
    #: Disputes: median 14 days, from 1 to 60 days.
    dispute_delay: Delay = field(default=Delay(14 * _DAY, 2.5, 1 * _DAY, 60 * _DAY))

    def __post_init__(self) -> None:
        shares = (self.analyst_share, self.chargeback_share, self.dispute_share)
        if min(shares) < 0 or self.analyst_share + self.chargeback_share > 1 or shares[2] > 1:
            raise ConfigError(
                "label shares must be >= 0, analyst_share + chargeback_share <= 1 and "
                f"dispute_share <= 1: {shares}"
            )

    @property
    def unreported_share(self) -> float:
        """Frauds never labelled."""
        return 1.0 - self.analyst_share - self.chargeback_share


_M64: Final = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser (wraps around in uint64, as intended)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniforms(seed: int, seq: npt.NDArray[np.int64], stream: int) -> npt.NDArray[np.float64]:
    """A uniform in [0, 1) per position, a pure function of (seed, position, stream)."""
    key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        x = seq.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key + np.uint64(stream)
        bits = _mix64(_mix64(x))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def simulate_labels(
    tx_id: Sequence[str],
    account: Sequence[str | None],
    event_time_ms: npt.NDArray[np.int64],
    is_fraud: npt.NDArray[np.integer],
    *,
    counterparty: Sequence[str | None] | None = None,
    first: int = 0,
    positions: npt.NDArray[np.int64] | None = None,
    mix: LabelMix = LabelMix(),  # noqa: B008  (frozen)
    seed: int = 7,
) -> list[LabelMessage]:
    """The labels of transactions at stream positions ``first, first + 1, …`` (or
    ``positions``), in input order; ``labelled_at_ms`` > the transaction's event time.

    ``is_fraud`` is the robots' ground truth (1 fraud, 0 genuine, -1 unknown: never labelled);
    each label carries its transaction's ``account``, ``counterparty`` and event time.
    """
    n = len(tx_id)
    if n == 0:
        return []
    seq = np.arange(first, first + n, dtype=np.int64) if positions is None else positions
    fate, when = _uniforms(seed, seq, 1), _uniforms(seed, seq, 2)
    fraud = np.asarray(is_fraud) == 1
    genuine = np.asarray(is_fraud) == 0
    analyst = fraud & (fate < mix.analyst_share)
    chargeback = fraud & ~analyst & (fate < mix.analyst_share + mix.chargeback_share)
    dispute = genuine & (fate < mix.dispute_share)
    delay = np.zeros(n, dtype=np.float64)
    for mask, dist in (
        (analyst, mix.analyst_delay),
        (chargeback, mix.chargeback_delay),
        (dispute, mix.dispute_delay),
    ):
        delay[mask] = dist.quantile(when[mask])
    source = np.full(n, "", dtype=object)
    source[analyst], source[chargeback], source[dispute] = "analyst", "chargeback", "dispute"
    at = np.asarray(event_time_ms, dtype=np.int64) + np.ceil(delay).astype(np.int64)
    rows = np.flatnonzero(analyst | chargeback | dispute).tolist()
    times = np.asarray(event_time_ms, dtype=np.int64)
    return [
        _label(
            tx_id[i],
            account[i],
            None if counterparty is None else counterparty[i],
            int(times[i]),
            int(at[i]),
            source[i],
        )
        for i in rows
    ]


def _label(
    tx_id: str,
    account: str | None,
    counterparty: str | None,
    tx_time_ms: int,
    at_ms: int,
    source: LabelSource,
) -> LabelMessage:
    return LabelMessage(
        tx_id=tx_id,
        account=account,
        counterparty=counterparty,
        tx_time_ms=tx_time_ms,
        label=1,
        labelled_at_ms=at_ms,
        source=source,
        reason=_REASONS[source],
    )


def batch_labels(
    batch: TxBatch,
    *,
    first: int = 0,
    mix: LabelMix = LabelMix(),
    seed: int = 7,  # noqa: B008
) -> list[LabelMessage]:
    """:func:`simulate_labels` of a canonical batch (``label`` is the ground truth)."""
    return simulate_labels(
        batch.tx_id,
        batch.account,
        batch.event_time_ms,
        batch.label,
        counterparty=batch.counterparty,
        first=first,
        mix=mix,
        seed=seed,
    )


def label_table(labels: Sequence[LabelMessage]) -> pa.Table:
    """Labels as a table with :data:`LABEL_COLUMNS`, in order of ``labelled_at_ms`` (then id)."""
    ordered = sorted(labels, key=lambda m: (m.labelled_at_ms, m.tx_id))
    return pa.table(
        {
            "label_id": pa.array([m.label_id for m in ordered], pa.string()),
            "tx_id": pa.array([m.tx_id for m in ordered], pa.string()),
            "account": pa.array([m.account for m in ordered], pa.string()),
            "counterparty": pa.array([m.counterparty for m in ordered], pa.string()),
            "tx_time_ms": pa.array([m.tx_time_ms for m in ordered], pa.int64()),
            "label": pa.array([m.label for m in ordered], pa.int64()),
            "source": pa.array([m.source for m in ordered], pa.string()),
            "labelled_at_ms": pa.array([m.labelled_at_ms for m in ordered], pa.int64()),
            "reason": pa.array([m.reason for m in ordered], pa.string()),
        }
    )


class PendingLabels:
    """Labels waiting for their time: a heap by ``labelled_at_ms`` (then arrival).

    A stream asks :meth:`due` with each transaction's event time before producing it, and
    produces the labels returned first: every label then precedes each transaction at or after
    its label time.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, LabelMessage]] = []
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, labels: Sequence[LabelMessage]) -> None:
        """Hold ``labels`` until :meth:`due` reaches their time."""
        for label in labels:
            self._pushed += 1
            heapq.heappush(self._heap, (label.labelled_at_ms, self._pushed, label))

    def due(self, now_ms: int) -> list[LabelMessage]:
        """Remove and return the labels with ``labelled_at_ms <= now_ms``, in time order."""
        heap = self._heap
        if not heap or heap[0][0] > now_ms:  # the common case, once per transaction
            return []
        out: list[LabelMessage] = []
        while heap and heap[0][0] <= now_ms:
            out.append(heapq.heappop(heap)[2])
        return out


class LiveLabels:
    """Labels of a live stream, each released just before the first transaction at or after its
    label time.

    :meth:`hold_paysim` / :meth:`hold_card` take each batch of records before it is produced:
    they give PaySim records without one the id ``{id_prefix}-{position}`` (by default
    ``sim-{seed}-{position}``, the id of the same position in a ``--out`` file; the live CLI adds
    the stream's start time, so two runs that differ do not share ids) and hold the batch's
    labels. Before producing each record, the
    stream asks :meth:`due` with its event time and produces the labels returned first. A label's
    time is after its transaction's and records come in event-time order, so a label never
    precedes its own transaction. Cheap on the hot path: one vectorised draw per batch, one
    comparison per record; labels are a fraction of a percent of the records.
    """

    def __init__(
        self,
        mix: LabelMix = LabelMix(),  # noqa: B008  (frozen)
        seed: int = 7,
        id_prefix: str | None = None,
    ) -> None:
        self.mix = mix
        self.seed = seed
        self.id_prefix = f"sim-{seed}" if id_prefix is None else id_prefix
        self.pending = PendingLabels()
        self.seen = 0

    def hold_paysim(self, records: Sequence[PaySimRecord]) -> None:
        """Give ``records`` ids and hold their labels."""
        if not records:
            return
        first = self.seen
        for i, rec in enumerate(records):
            if rec.txId is None:
                rec.txId = f"{self.id_prefix}-{first + i}"
        self._hold(
            [r.txId or "" for r in records],
            [r.nameOrig for r in records],
            [r.nameDest for r in records],
            [r.eventTimeMs or 0 for r in records],
            [-1 if r.isFraud is None else r.isFraud for r in records],
        )

    def hold_card(self, records: Sequence[CardRecord]) -> None:
        """Hold the labels of card records (their ``txId`` is set by the card simulator)."""
        if not records:
            return
        self._hold(
            [r.txId or f"card-{self.seed}-{self.seen + i}" for i, r in enumerate(records)],
            [r.customerId for r in records],
            [r.terminalId for r in records],
            [r.eventTimeMs for r in records],
            [-1 if r.isFraud is None else r.isFraud for r in records],
        )

    def due(self, event_ms: int) -> list[LabelMessage]:
        """The labels to produce before a transaction at ``event_ms``, in time order."""
        return self.pending.due(event_ms)

    def _hold(
        self,
        ids: list[str],
        accounts: list[str],
        counterparties: list[str],
        times: list[int],
        truth: list[int],
    ) -> None:
        self.pending.add(
            simulate_labels(
                ids,
                accounts,
                np.asarray(times, dtype=np.int64),
                np.asarray(truth, dtype=np.int8),
                counterparty=counterparties,
                first=self.seen,
                mix=self.mix,
                seed=self.seed,
            )
        )
        self.seen += len(ids)
