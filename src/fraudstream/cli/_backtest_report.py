"""How ``fraudstream rules backtest`` shows its figures: a rich table per rule, ``--json``, and
``--out FILE`` (the per-rule table as CSV or Parquet)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from rich.table import Table

from fraudstream.cli._app import console
from fraudstream.cli._rulestore import refuse
from fraudstream.rules import Backtest

__all__ = ["print_table", "to_json", "write_table"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _closest(bt: Backtest) -> dict[str, str]:
    """Rule id → the rule sharing the largest share of its hits, e.g. ``mules 40.0%``."""
    if bt.overlap.height == 0:
        return {}
    best = bt.overlap.sort(["share_of_rule", "other_id"], descending=[True, False]).unique(
        "rule_id", keep="first", maintain_order=True
    )
    return {
        r["rule_id"]: f"{r['other_id']} {_pct(r['share_of_rule'])}"
        for r in best.iter_rows(named=True)
    }


def print_table(bt: Backtest, title: str, skipped: Sequence[str]) -> None:
    """The per-rule table and the totals, on stdout."""
    table = Table(title=title, title_justify="left")
    table.add_column("rule", no_wrap=True)
    for name in ("action", "status"):
        table.add_column(name)
    for name in ("hits", "per day", "precision", "recall", "model alerts"):
        table.add_column(name, justify="right")
    table.add_column("most shared with", justify="right", no_wrap=True)
    table.add_column("cost Δ", justify="right")
    closest = _closest(bt)
    for r in bt.table.iter_rows(named=True):
        per_day = r["hits_per_day"]
        table.add_row(
            r["rule_id"],
            r["action"],
            r["status"],
            f"{r['hits']:,}",
            "-" if per_day is None else f"{per_day:,.1f}",
            _pct(r["precision"]),
            _pct(r["recall"]),
            _pct(r["model_overlap"]),
            closest.get(r["rule_id"], "-"),
            f"{r['cost_delta']:+,.0f}",
        )
    console.print(table)
    days = "-" if bt.days is None else f"{bt.days:,.2f}"
    console.print(
        f"{bt.rows:,} transactions over {days} days, {bt.labelled_rows:,} labelled, "
        f"{bt.frauds:,} frauds; cost of the model alone {bt.model_cost:,.0f}, with every rule "
        f"above acting {bt.all_rules_cost:,.0f} ({bt.all_rules_cost - bt.model_cost:+,.0f})",
        highlight=False,
    )
    if bt.labelled_rows == 0:
        console.print(
            "no labels: precision, recall and costs need --labels FILE or --ground-truth "
            "(a file), or verdicts in the store",
            highlight=False,
        )
    for line in skipped:
        console.print(line, highlight=False)


def to_json(bt: Backtest, source: str, skipped: Sequence[str]) -> str:
    """The backtest as one JSON document."""
    doc = {
        "source": source,
        "rows": bt.rows,
        "labelled_rows": bt.labelled_rows,
        "frauds": bt.frauds,
        "days": bt.days,
        "model_cost": bt.model_cost,
        "all_rules_cost": bt.all_rules_cost,
        "skipped": list(skipped),
        "rules": bt.table.to_dicts(),
        "overlap": bt.overlap.to_dicts(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def write_table(table: pl.DataFrame, out: Path) -> None:
    """The per-rule table to ``out``: ``.csv`` or ``.parquet``."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise refuse(f"--out {out}: write a .csv or a .parquet file")
    try:
        if suffix == ".csv":
            table.write_csv(out)
        else:
            table.write_parquet(out)
    except OSError as exc:
        raise refuse(f"cannot write {out}: {exc}") from None
