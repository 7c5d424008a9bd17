"""Label-delay-aware feedback: how the alerts of each age fared against the labels so far.

Labels arrive late (an analyst's verdict within hours, a chargeback after weeks), so precision
and recall of recent alerts are provisional: "alerts from 1-24 h ago: 412, 61 % labelled so far,
58 % of those confirmed fraud (ground truth: 63 %)". Per age bucket of a transaction's event time
relative to the store's latest event time (:data:`AGE_BUCKETS`), over stored transactions:

- **alerts**: transactions decided ``review`` or ``block``;
- **verdicts so far**: the latest label per ``tx_id`` from the ``labels`` table and the
  dashboard's verdicts (``fraud_alerts.status``, labelled at ``reviewed_at_ms``). The latest
  ``labelled_at_ms`` wins; at equal times the higher ``SOURCE_PRECEDENCE``, then fraud (the
  rule the detector applies, ``schema._labels``). A label of a transaction not stored (not seen
  yet, or past the retention) counts nowhere;
- **precision so far** = alerts with a fraud verdict / alerts with a verdict; **recall so far**
  = transactions whose verdict is fraud that were alerted / transactions whose verdict is fraud;
- **ground truth** beside them: the same from the stored transaction's own ``label`` (the
  simulator's ``isFraud``; ``NULL`` when the source has none).

Pure SQL written once with ``?`` placeholders, run by a :data:`Query` (the dashboard's
``Database.rows``), the same on SQLite and PostgreSQL. Each query is bounded by an index: the
alerted rows (partial index ``ix_enriched_alerted``), the ground-truth frauds
(``ix_enriched_fraud``), and the labels joined to their transactions by primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from fraudstream.schema import SOURCE_PRECEDENCE, VERDICTS

__all__ = ["AGE_BUCKETS", "Feedback", "Query", "feedback_line", "feedback_lines", "label_feedback"]

#: Runs one query (``?`` placeholders) and returns all its rows.
Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS
#: ``(name, phrase, age limit in ms)`` per bucket, youngest first; the last has no limit.
AGE_BUCKETS: Final[tuple[tuple[str, str, int | None], ...]] = (
    ("< 1 h", "the last hour", _HOUR_MS),
    ("1-24 h", "1-24 h ago", _DAY_MS),
    ("1-7 d", "1-7 days ago", 7 * _DAY_MS),
    ("> 7 d", "over 7 days ago", None),
)

_PRECEDENCE: Final = (
    "CASE source "
    + " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in SOURCE_PRECEDENCE.items())
    + " ELSE -1 END"
)
#: Every verdict ranked per ``tx_id`` (the latest has ``rank = 1``), as the CTEs ``verdicts``
#: and ``ranked`` of a ``WITH`` clause; its two ``?`` take :data:`VERDICTS`.
RANKED_VERDICTS: Final = f"""verdicts AS (
    SELECT tx_id, label, source, labelled_at_ms FROM labels
    UNION ALL
    SELECT tx_id, CASE WHEN status = 'confirmed_fraud' THEN 1 ELSE 0 END, 'analyst',
        coalesce(reviewed_at_ms, created_at_ms)
    FROM fraud_alerts WHERE status IN (?, ?)
), ranked AS (
    SELECT tx_id, label, row_number() OVER (
        PARTITION BY tx_id ORDER BY labelled_at_ms DESC, {_PRECEDENCE} DESC, label DESC
    ) AS rank
    FROM verdicts
)"""
#: The latest verdict per ``tx_id``, joined to its stored transaction (``{bucket}``: SQL).
_VERDICTS_SQL: Final = (
    "\nWITH "
    + RANKED_VERDICTS
    + """
SELECT {bucket},
    sum(CASE WHEN r.label = 1 AND t.decision <> 'allow' THEN 1 ELSE 0 END),
    sum(CASE WHEN r.label = 0 AND t.decision <> 'allow' THEN 1 ELSE 0 END),
    sum(CASE WHEN r.label = 1 THEN 1 ELSE 0 END)
FROM ranked r JOIN transactions_enriched t ON t.tx_id = r.tx_id
WHERE r.rank = 1 GROUP BY 1"""
)
#: Alerts and their ground truth: ``decision <> 'allow'`` admits the partial index
#: ``ix_enriched_alerted`` and the (always true) range on its first column makes SQLite's
#: planner pick it over ``ix_enriched_decision``, which does not cover ``label``.
_ALERTS_SQL: Final = """
SELECT {bucket}, count(*),
    sum(CASE WHEN label IS NOT NULL THEN 1 ELSE 0 END),
    sum(CASE WHEN label = 1 THEN 1 ELSE 0 END)
FROM transactions_enriched WHERE decision <> 'allow' AND event_time_ms >= 0 GROUP BY 1"""
#: Ground-truth frauds and how many were alerted (``ix_enriched_fraud``).
_FRAUDS_SQL: Final = """
SELECT {bucket}, count(*), sum(CASE WHEN decision <> 'allow' THEN 1 ELSE 0 END)
FROM transactions_enriched WHERE label = 1 GROUP BY 1"""


@dataclass(frozen=True)
class Feedback:
    """One age bucket's alerts against the labels so far and against ground truth."""

    age: str
    phrase: str
    alerts: int = 0
    fraud_verdicts: int = 0  # alerts whose latest label is fraud (true positives so far)
    genuine_verdicts: int = 0  # alerts whose latest label is genuine
    labelled_frauds: int = 0  # transactions whose latest label is fraud, alerted or not
    truth_alerts: int = 0  # alerts whose transaction carries a ground-truth label
    truth_true_alerts: int = 0  # ... that is fraud
    truth_frauds: int = 0  # transactions that are fraud by ground truth
    truth_frauds_alerted: int = 0  # ... that were alerted

    @property
    def labelled(self) -> int:
        """Alerts with a verdict so far."""
        return self.fraud_verdicts + self.genuine_verdicts

    @property
    def unlabelled(self) -> int:
        """Alerts still without a verdict."""
        return self.alerts - self.labelled

    @property
    def labelled_share(self) -> float | None:
        return _share(self.labelled, self.alerts)

    @property
    def precision(self) -> float | None:
        """Fraud verdicts / alerts with a verdict (``None`` before the first verdict)."""
        return _share(self.fraud_verdicts, self.labelled)

    @property
    def recall(self) -> float | None:
        """Alerted transactions labelled fraud / transactions labelled fraud."""
        return _share(self.fraud_verdicts, self.labelled_frauds)

    @property
    def truth_precision(self) -> float | None:
        return _share(self.truth_true_alerts, self.truth_alerts)

    @property
    def truth_recall(self) -> float | None:
        return _share(self.truth_frauds_alerted, self.truth_frauds)


#: The count fields of :class:`Feedback`, in order.
_COUNTS: Final = tuple(f.name for f in fields(Feedback)[2:])


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _bucket_sql(column: str, anchor_ms: int) -> str:
    """The bucket number of ``column`` (trusted SQL) as of ``anchor_ms``: 0 youngest."""
    limits = [int(anchor_ms) - ms for _, _, ms in AGE_BUCKETS if ms is not None]
    cases = " ".join(f"WHEN {column} > {at} THEN {i}" for i, at in enumerate(limits))
    return f"CASE {cases} ELSE {len(limits)} END"


def label_feedback(query: Query, anchor_ms: int | None = None) -> list[Feedback]:
    """One :class:`Feedback` per :data:`AGE_BUCKETS` entry, youngest first.

    Ages are measured from ``anchor_ms``, by default the store's latest event time (a replayed
    store reads the same); every count is 0 when the store holds no transaction.
    """
    found: dict[tuple[int, str], int] = {}
    if anchor_ms is None:
        rows = query("SELECT max(event_time_ms) FROM transactions_enriched", ())
        anchor_ms = None if not rows or rows[0][0] is None else int(rows[0][0])
    if anchor_ms is not None:
        plain = _bucket_sql("event_time_ms", anchor_ms)
        joined = _VERDICTS_SQL.format(bucket=_bucket_sql("t.event_time_ms", anchor_ms))
        for text, params, names in (
            (_ALERTS_SQL.format(bucket=plain), (), ("alerts", "truth_alerts", "truth_true_alerts")),
            (_FRAUDS_SQL.format(bucket=plain), (), ("truth_frauds", "truth_frauds_alerted")),
            (joined, VERDICTS, ("fraud_verdicts", "genuine_verdicts", "labelled_frauds")),
        ):
            for b, *counts in query(text, params):
                found.update(((int(b), k), int(n or 0)) for k, n in zip(names, counts, strict=True))
    return [
        Feedback(name, phrase, *(found.get((i, k), 0) for k in _COUNTS))
        for i, (name, phrase, _) in enumerate(AGE_BUCKETS)
    ]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def feedback_line(f: Feedback) -> str:
    """E.g. "alerts from 1-24 h ago: 412, 61 % labelled so far, 58 % of those confirmed fraud
    (ground truth: 63 %)"."""
    text = f"alerts from {f.phrase}: {f.alerts:,}, {_pct(f.labelled_share)} labelled so far"
    if f.labelled:
        text += f", {_pct(f.precision)} of those confirmed fraud"
    return text + f" (ground truth: {_pct(f.truth_precision)})"


def feedback_lines(buckets: Sequence[Feedback]) -> list[str]:
    """:func:`feedback_line` of each bucket holding alerts (``["no alerts yet"]`` if none)."""
    return [feedback_line(f) for f in buckets if f.alerts] or ["no alerts yet"]
