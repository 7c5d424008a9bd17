"""How each rule has fired in the running detector, and its precision as labels arrive.

From the stored transactions (``rules_fired`` / ``rules_shadow``, read through the partial index
over the rows some rule fired on) and the latest verdict per transaction, as
:mod:`fraudstream.sinks._feedback` takes it (the ``labels`` table and the dashboard's verdicts;
the latest wins). A shadow rule's hits are what it would have reviewed or blocked: its precision
says whether to put it live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fraudstream.schema import VERDICTS
from fraudstream.sinks._feedback import RANKED_VERDICTS
from fraudstream.sinks._rules_store import RuleStore

__all__ = ["RuleHits", "rule_hits"]

#: The ids in a JSON array column, one row each, per store.
_ELEMENTS: Final = {
    "sqlite": "json_each(t.{column}) j",
    "postgresql": "LATERAL jsonb_array_elements_text(t.{column}::jsonb) AS j(value)",
}
_HITS: Final = """
SELECT t.tx_id, j.value AS rule_id, {shadow} AS shadow
FROM transactions_enriched t, {elements}
WHERE (t.rules_fired IS NOT NULL OR t.rules_shadow IS NOT NULL) AND t.{column} IS NOT NULL
    AND t.event_time_ms >= ?"""
_STATS: Final = """
SELECT h.rule_id, h.shadow, count(*), count(r.label), coalesce(sum(r.label), 0)
FROM hits h LEFT JOIN ranked r ON r.tx_id = h.tx_id AND r.rank = 1
GROUP BY h.rule_id, h.shadow ORDER BY h.shadow, h.rule_id"""


@dataclass(frozen=True, slots=True)
class RuleHits:
    """A rule's record in the store: stored transactions it fired on (as a live or a shadow
    rule), how many of those have a verdict so far, and how many were fraud."""

    rule_id: str
    shadow: bool
    hits: int
    labelled: int
    frauds: int

    @property
    def precision(self) -> float | None:
        """Fraud share of its labelled hits (``None`` before any verdict)."""
        return self.frauds / self.labelled if self.labelled else None


def rule_hits(store: RuleStore, *, since_ms: int = 0) -> list[RuleHits]:
    """Every rule's hits on transactions with an event time at or after ``since_ms``, live
    rules first, then shadow rules, by id."""
    dialect = store.db.dialect

    def hits(column: str, shadow: int) -> str:
        elements = _ELEMENTS[dialect].format(column=column)
        return _HITS.format(shadow=shadow, elements=elements, column=column)

    live, shadow = hits("rules_fired", 0), hits("rules_shadow", 1)
    sql = f"WITH hits AS ({live} UNION ALL {shadow}), {RANKED_VERDICTS}{_STATS}"
    rows = store.db.rows(sql, (since_ms, since_ms, *VERDICTS))
    return [
        RuleHits(str(rule), bool(shadow), int(n), int(labelled), int(frauds))
        for rule, shadow, n, labelled, frauds in rows
    ]
