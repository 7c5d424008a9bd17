"""What ``fraudstream retrain`` reads from the store: recent transactions with the verdicts that
have arrived, the label records, and the shadow scores of a challenger beside the champion's.

The target of a row is the latest verdict on it (``labels`` and the dashboard's reviews, ranked
as :data:`~fraudstream.sinks._feedback.RANKED_VERDICTS`), ``-1`` when none has arrived: never the
transaction's own ``label`` column (the simulator's ground truth). Which unlabelled rows count as
genuine is the caller's rule (:mod:`fraudstream.model._retrain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fraudstream.schema import KINDS, VERDICTS, LabelMessage, TxBatch
from fraudstream.sinks._feedback import RANKED_VERDICTS
from fraudstream.sinks._sqlconn import Row, SqlConnection

__all__ = ["ShadowSample", "latest_event_ms", "shadow_sample", "stored_history"]

#: ``latest``: the latest verdict per ``tx_id``; its two ``?`` take :data:`VERDICTS`.
_LATEST: Final = (
    f"WITH {RANKED_VERDICTS}, latest AS (SELECT tx_id, label FROM ranked WHERE rank = 1)"
)
_HISTORY: Final = f"""{_LATEST}
SELECT t.tx_id, t.event_time_ms, t.account, t.counterparty, t.kind, t.amount,
    t.old_balance_orig, t.new_balance_orig, t.old_balance_dest, t.new_balance_dest, t.step,
    v.label
FROM transactions_enriched t LEFT JOIN latest v ON v.tx_id = t.tx_id
WHERE t.event_time_ms >= ? AND t.event_time_ms < ?
ORDER BY t.event_time_ms, t.tx_id"""
_LABELS: Final = """
SELECT tx_id, label, labelled_at_ms, account, counterparty, tx_time_ms, alert_id, source,
    analyst, reason
FROM labels WHERE labelled_at_ms <= ? ORDER BY labelled_at_ms, label_id"""
_SHADOW: Final = f"""{_LATEST}
SELECT t.event_time_ms, t.amount, t.score, s.score, v.label
FROM shadow_decisions s
JOIN transactions_enriched t ON t.tx_id = s.tx_id
LEFT JOIN latest v ON v.tx_id = s.tx_id
WHERE s.model_version = ? AND t.model_version = ? AND t.score IS NOT NULL
ORDER BY t.event_time_ms"""

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ShadowSample:
    """The rows a challenger scored in shadow while ``champion`` scored them live."""

    event_time_ms: I64
    amount: F64
    champion_score: F64
    challenger_score: F64
    #: the latest verdict: 1 fraud, 0 genuine, -1 none arrived yet
    verdict: I8


def latest_event_ms(db: SqlConnection) -> int | None:
    """The latest stored event time (the stream's "now"), ``None`` for an empty store."""
    (latest,) = db.rows("SELECT max(event_time_ms) FROM transactions_enriched")[0]
    return None if latest is None else int(latest)


def stored_history(
    db: SqlConnection, start_ms: int, end_ms: int
) -> tuple[TxBatch, list[LabelMessage]]:
    """The stored transactions of ``[start_ms, end_ms)`` in event-time order, their ``label``
    the latest verdict (``-1``: none), and the label records known by ``end_ms``."""
    rows = db.rows(_HISTORY, (*VERDICTS, int(start_ms), int(end_ms)))
    labels = [_label(r) for r in db.rows(_LABELS, (int(end_ms),))]
    return _batch(rows), labels


def shadow_sample(db: SqlConnection, challenger: str, champion: str) -> ShadowSample:
    """The challenger's shadow scores with the champion's live ones on the same rows."""
    rows = db.rows(_SHADOW, (*VERDICTS, challenger, champion))
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return ShadowSample(
        event_time_ms=np.array(cols[0], np.int64),
        amount=np.array(cols[1], np.float64),
        champion_score=np.array(cols[2], np.float64),
        challenger_score=np.array(cols[3], np.float64),
        verdict=np.array([-1 if v is None else int(v) for v in cols[4]], np.int8),
    )


def _label(row: Row) -> LabelMessage:
    tx_id, label, at, account, counterparty, tx_time, alert_id, source, analyst, reason = row
    return LabelMessage(
        tx_id=str(tx_id),
        label=1 if int(label) == 1 else 0,
        labelled_at_ms=int(at),
        account=account,
        counterparty=counterparty,
        tx_time_ms=None if tx_time is None else int(tx_time),
        alert_id=alert_id,
        source=source,
        analyst=analyst,
        reason=reason,
    )


def _batch(rows: list[Row]) -> TxBatch:
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 12

    def floats(i: int) -> F64:
        return np.array([np.nan if v is None else float(v) for v in cols[i]], np.float64)

    code = {k: i for i, k in enumerate(KINDS)}
    return TxBatch(
        tx_id=[str(v) for v in cols[0]],
        event_time_ms=np.array(cols[1], np.int64),
        account=[str(v) for v in cols[2]],
        counterparty=[str(v) for v in cols[3]],
        kind=np.array([code.get(str(v), 0) for v in cols[4]], np.int8),
        amount=floats(5),
        old_balance_orig=floats(6),
        new_balance_orig=floats(7),
        old_balance_dest=floats(8),
        new_balance_dest=floats(9),
        label=np.array([-1 if v is None else int(v) for v in cols[11]], np.int8),
        step=np.array(cols[10], np.int64),
        flagged=np.zeros(n, np.int8),
    )
