"""``fraudstream schema``: propose, check and try out a transaction file's schema declaration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import typer
from rich.table import Table

from fraudstream.cli._app import app, console, err_console, fail, load_settings
from fraudstream.cli._schema_opts import SchemaOption, resolve_schema
from fraudstream.schema._cc_layout import credit_card_layout
from fraudstream.schema._files import TransactionFile, read_header, read_transactions
from fraudstream.schema._infer import infer_schema
from fraudstream.schema._resolve import ColumnPlan, plan_columns

__all__ = ["schema_app"]

schema_app = typer.Typer(
    help="Declare which of a file's columns plays which role (docs/your-data.md).",
    no_args_is_help=True,
)
app.add_typer(schema_app, name="schema")

#: Event times outside these years suggest a wrong unit (seconds read as ms, or the reverse).
_PLAUSIBLE_YEARS = (1990, 2100)


@schema_app.command("infer")
def infer(
    file: Path = typer.Argument(..., help="CSV or Parquet transaction file."),
    out: Path | None = typer.Option(None, "--out", help="Write the TOML here (default: stdout)."),
    rows: int = typer.Option(10_000, min=1, help="Rows sampled from the file's start."),
) -> None:
    """Propose a declaration from FILE's header and first rows (TOML; what fits nothing is
    listed on stderr and as comments)."""
    proposal = infer_schema(read_header(file, rows))
    text = proposal.to_toml(file.name)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {out} ({len(proposal.schema.fields)} fields)", highlight=False)
    for column, why in proposal.unplaced.items():
        err_console.print(f"[yellow]not placed:[/] {column}: {why}", highlight=False)


@schema_app.command("check")
def check(
    file: Path = typer.Argument(..., help="CSV or Parquet transaction file."),
    schema: SchemaOption = None,
    label: bool = typer.Option(False, "--label", help="Require the label (as train does)."),
) -> None:
    """Read FILE with the declaration and print the resolved mapping, or the errors."""
    declaration = resolve_schema(schema, load_settings())
    plan = plan_columns(
        read_header(file, 1).columns,
        declaration,
        None,
        require_label=label,
        name=file.name,
        origin=declaration.origin,
    )
    read = read_transactions(file, schema=declaration, require_label=label)
    console.print(_mapping(plan, read.frame.columns))
    unused = [c for c in read_header(file, 1).columns if c not in plan.sources.values()]
    if unused:
        console.print(f"not read: {', '.join(unused)}", highlight=False)
    first, last = (int(read.event_time_ms[i]) for i in (0, -1))
    console.print(
        f"{file.name}: {read.format} format, {len(read):,} of {read.rows_read:,} rows usable"
        f"{f' ({read.skipped:,} skipped, see the warning above)' if read.skipped else ''}; "
        f"event time {_when(first)} to {_when(last)}"
        + (" (relative: from --start when replayed)" if read.relative_time else ""),
        highlight=False,
    )
    _warn_implausible(read)


def _mapping(plan: ColumnPlan, columns: list[str]) -> Table:
    table = Table(title="resolved mapping", title_justify="left")
    for header in ("file column", "role", "read as", "from"):
        table.add_column(header)
    for column in columns:
        how = "declared" if column in plan.declared or column in plan.extras else "by its name"
        table.add_row(
            plan.sources.get(column, "(derived)"), plan.roles.get(column, ""), column, how
        )
    return table


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _warn_implausible(read: TransactionFile) -> None:
    if read.relative_time:
        return
    years = [
        dt.datetime.fromtimestamp(int(t) / 1000, tz=dt.UTC).year
        for t in (read.event_time_ms[0], read.event_time_ms[-1])
    ]
    if min(years) < _PLAUSIBLE_YEARS[0] or max(years) > _PLAUSIBLE_YEARS[1]:
        err_console.print(
            f"[yellow]warning:[/] event times in {years[0]}-{years[1]}: is the event time's unit "
            "right (ms, s, iso)?",
            highlight=False,
        )


@schema_app.command("sample")
def sample(
    out: Path = typer.Argument(..., help="Where to write (.csv or .parquet)."),
    rows: int = typer.Option(5_000, min=1, help="Transactions."),
    customers: int = typer.Option(500, min=1, help="Card holders."),
    seed: int = typer.Option(7, help="Random seed."),
) -> None:
    """Write simulated card payments in the public credit-card dataset's layout (cc_num,
    merchant, category, amt, unix_time, lat, long, merch_lat, merch_long, is_fraud, …)."""
    from fraudstream.simulate import CardSimulator, card_table

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise fail(f"OUT must end in .csv or .parquet, got {out.name}")
    sim = CardSimulator(customers=customers, seed=seed)
    handbook = pl.DataFrame(pl.from_arrow(card_table(sim.next_columns(rows), sim.start_ms)))
    frame = credit_card_layout(handbook, sim.customer_xy, sim.terminal_xy)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    console.print(f"wrote {frame.height:,} rows to {out} ({int(frame['is_fraud'].sum()):,} frauds)")
