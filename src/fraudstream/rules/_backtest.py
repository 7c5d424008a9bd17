"""Backtests: what rules would have done on scored history, figure by figure.

Every rule given is evaluated, whatever its status (a draft is what one backtests). Labels are
1 fraud, 0 genuine, -1 or null unknown; precision, recall and costs count only labelled rows.
Costs are :class:`~fraudstream.model.Costs`'s (:func:`~fraudstream.model._costs.expected_cost`):
a rule's ``cost`` is that of the model's decisions with this one rule acting on top of them in
the decision order (see :mod:`fraudstream.rules._rules`), ``cost_delta`` its difference from the
model alone (negative: the rule saves money).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.model._costs import Costs, expected_cost
from fraudstream.rules._ast import Expr, lists_of
from fraudstream.rules._compile import Bools, Compiled, Lists, column_types
from fraudstream.rules._errors import RuleError
from fraudstream.rules._fields import Schema
from fraudstream.rules._rules import Rule, combine, validate

__all__ = ["Backtest", "backtest", "rule_columns", "rule_lists"]

_DAY_MS: Final = 86_400_000
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Backtest:
    """A backtest's figures.

    ``table``: one row per rule (in the order given) with ``rule_id, action, status, hits,
    hit_share, hits_per_day, labelled_hits, frauds_hit, precision, recall, fraud_amount_hit,
    model_alerts_hit, model_overlap, cost, cost_delta``. ``precision`` is the fraud share of the
    rule's labelled hits (an allow rule wants it low), ``recall`` the share of labelled frauds it
    hits, ``model_overlap`` the share of its hits the model alone already reviews or blocks.
    Ratios with a zero denominator are null.

    ``overlap``: one row per ordered pair of rules that share hits (``rule_id, other_id, both,
    share_of_rule, jaccard``). ``all_rules_cost`` is the cost with every given rule acting.
    """

    table: pl.DataFrame
    overlap: pl.DataFrame
    rows: int
    labelled_rows: int
    frauds: int
    days: float | None
    model_cost: float
    all_rules_cost: float


@dataclass(frozen=True, slots=True)
class _History:
    label: npt.NDArray[np.int64]
    labelled: Bools
    fraud: Bools
    amount: F64
    model: npt.NDArray[np.int8]
    days: float | None
    costs: Costs

    def cost(self, decision: npt.NDArray[np.int8]) -> float:
        m = self.labelled
        return expected_cost(decision[m], self.label[m], self.amount[m], self.costs)


def backtest(
    history: pl.DataFrame,
    rules: Iterable[Rule],
    schema: Schema,
    *,
    lists: Lists | None = None,
    costs: Costs | None = None,
    label: str = "label",
    decision: str = "decision",
    amount: str = "amount",
    time: str = "event_time_ms",
) -> Backtest:
    """Backtest ``rules`` on ``history`` (fields, features, ``score``, the model's ``decision``
    0/1/2, ``label``, ``amount``, event ``time`` in ms). Pure: reads only its arguments."""
    rules = list(rules)
    known: Collection[str] | None = None if lists is None else lists.keys()
    exprs = _checked(rules, schema, known)
    _check_columns(exprs, history.columns)
    h = _history(history, costs or Costs(), label, decision, amount, time)
    hits = Compiled(exprs).evaluate(history, lists, rows=history.height)
    model_cost = h.cost(h.model)
    table = pl.DataFrame(
        [_figures(r, hits[r.id], h, model_cost) for r in rules],
        schema=_TABLE_SCHEMA,
        orient="row",
    )
    everything = combine(h.model, [(r.action, hits[r.id]) for r in rules])
    return Backtest(
        table=table,
        overlap=_overlap([r.id for r in rules], hits),
        rows=history.height,
        labelled_rows=int(h.labelled.sum()),
        frauds=int(h.fraud.sum()),
        days=h.days,
        model_cost=model_cost,
        all_rules_cost=h.cost(everything),
    )


def rule_columns(rules: Iterable[Rule], schema: Schema) -> dict[str, frozenset[str]]:
    """Rule id → the history columns it reads (validated against ``schema``, lists unchecked):
    what a caller loads before :func:`backtest` (see ``sinks.load_history``)."""
    exprs = _checked(list(rules), schema, None)
    return {i: frozenset(column_types([e])) for i, e in exprs.items()}


def rule_lists(rules: Iterable[Rule], schema: Schema) -> frozenset[str]:
    """The names of the lists ``rules`` look values up in."""
    exprs = _checked(list(rules), schema, None).values()
    return frozenset().union(*map(lists_of, exprs))


def _checked(rules: list[Rule], schema: Schema, known: Collection[str] | None) -> dict[str, Expr]:
    exprs = {r.id: validate(r, schema, known) for r in rules}
    if len(exprs) != len(rules):
        raise RuleError("a rule id is used twice in the backtest")
    return exprs


def _check_columns(exprs: dict[str, Expr], have: Collection[str]) -> None:
    """A :class:`RuleError` naming the first rule that reads a column the history lacks."""
    present = set(have)
    for rule_id, expr in exprs.items():
        missing = sorted(set(column_types([expr])) - present)
        if missing:
            raise RuleError(
                f"rule {rule_id!r} reads {', '.join(map(repr, missing))}, which the history "
                "does not have"
            )


def _history(
    frame: pl.DataFrame, costs: Costs, label: str, decision: str, amount: str, time: str
) -> _History:
    missing = [c for c in (label, decision, amount, time) if c not in frame.columns]
    if missing:
        raise RuleError(f"the history has no column {', '.join(map(repr, missing))}")
    lab = frame.get_column(label).cast(pl.Int64).fill_null(-1).to_numpy()
    times = frame.get_column(time).cast(pl.Int64).drop_nulls().to_numpy()
    span = float(times.max() - times.min()) if len(times) >= 2 else 0.0
    return _History(
        label=lab,
        labelled=(lab == 0) | (lab == 1),
        fraud=lab == 1,
        amount=frame.get_column(amount).cast(pl.Float64).fill_nan(0.0).fill_null(0.0).to_numpy(),
        model=frame.get_column(decision).cast(pl.Int8).fill_null(0).to_numpy(),
        days=span / _DAY_MS if span > 0 else None,
        costs=costs,
    )


_TABLE_SCHEMA: Final = {
    "rule_id": pl.String,
    "action": pl.String,
    "status": pl.String,
    "hits": pl.Int64,
    "hit_share": pl.Float64,
    "hits_per_day": pl.Float64,
    "labelled_hits": pl.Int64,
    "frauds_hit": pl.Int64,
    "precision": pl.Float64,
    "recall": pl.Float64,
    "fraud_amount_hit": pl.Float64,
    "model_alerts_hit": pl.Int64,
    "model_overlap": pl.Float64,
    "cost": pl.Float64,
    "cost_delta": pl.Float64,
}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _figures(rule: Rule, hit: Bools, h: _History, model_cost: float) -> tuple[object, ...]:
    hits = int(hit.sum())
    labelled = int((hit & h.labelled).sum())
    tp = int((hit & h.fraud).sum())
    alerted = int((hit & (h.model > 0)).sum())
    cost = h.cost(combine(h.model, [(rule.action, hit)]))
    return (
        rule.id,
        rule.action,
        rule.status,
        hits,
        _ratio(hits, len(hit)),
        None if h.days is None else hits / h.days,
        labelled,
        tp,
        _ratio(tp, labelled),
        _ratio(tp, int(h.fraud.sum())),
        float(h.amount[hit & h.fraud].sum()),
        alerted,
        _ratio(alerted, hits),
        cost,
        cost - model_cost,
    )


def _overlap(ids: list[str], hits: dict[str, Bools]) -> pl.DataFrame:
    schema = {
        "rule_id": pl.String,
        "other_id": pl.String,
        "both": pl.Int64,
        "share_of_rule": pl.Float64,
        "jaccard": pl.Float64,
    }
    if len(ids) < 2:
        return pl.DataFrame(schema=schema)
    matrix = np.column_stack([hits[i] for i in ids])
    matrix = matrix[matrix.any(axis=1)].astype(np.float64)  # rows no rule hits add nothing
    both = np.rint(matrix.T @ matrix).astype(np.int64)
    counts = np.diag(both)
    rows = [
        (
            a,
            b,
            int(both[i, j]),
            both[i, j] / counts[i],
            both[i, j] / (counts[i] + counts[j] - both[i, j]),
        )
        for i, a in enumerate(ids)
        for j, b in enumerate(ids)
        if i != j and both[i, j] > 0
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")
