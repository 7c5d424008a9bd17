"""``fraudstream evaluate``: the Fraud Detection Handbook's protocols on its card data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import typer

from fraudstream.cli._app import app, console, err_console, fail
from fraudstream.model._fdh import fdh_features, fdh_labels, load_fdh, run_ch3, run_ch5
from fraudstream.schema import LabelMessage, read_labels
from fraudstream.simulate._labels import label_table

__all__ = ["evaluate"]


@app.command()
def evaluate(
    data: Path = typer.Argument(..., help="The handbook's transactions (parquet)."),
    protocol: str = typer.Option("fdh-ch3", help="fdh-ch3 (baseline) or fdh-ch5 (prequential)."),
    model: str = typer.Option("logreg", help="logreg or lgbm."),
    features: str = typer.Option(
        "", help="fdh (the handbook's 15) or rich (ours too); default fdh for ch3, rich for ch5."
    ),
    labels: Path | None = typer.Option(
        None,
        help="Labels file (CSV or Parquet, as `labels import` reads). Features and ground truth "
        "come from it, never from TX_FRAUD. If FILE does not exist it is written from DATA's "
        "TX_FRAUD, each fraud known 7 days after the transaction (the handbook's delay); "
        "without --labels those labels are used in memory.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Reproduce a handbook protocol and print AUC ROC, average precision and CP@100."""
    if protocol not in ("fdh-ch3", "fdh-ch5"):
        raise typer.BadParameter("protocol must be fdh-ch3 or fdh-ch5", param_hint="--protocol")
    if model not in ("logreg", "lgbm"):
        raise typer.BadParameter("model must be logreg or lgbm", param_hint="--model")
    if features not in ("", "fdh", "rich"):
        raise typer.BadParameter("features must be fdh or rich", param_hint="--features")
    if not data.is_file():
        raise fail(f"no such file: {data}")
    rich = features == "rich" if features else protocol == "fdh-ch5"
    started = time.monotonic()
    df = load_fdh(data)
    label_records = _labels(df, labels)
    with console.status("replaying the history through the card feature engine…"):
        d = fdh_features(df, label_records)
    with console.status(f"{protocol}: training and scoring {model}…"):
        result = (
            run_ch3(d, model, rich)  # type: ignore[arg-type]
            if protocol == "fdh-ch3"
            else run_ch5(d, model, rich)  # type: ignore[arg-type]
        )
    result["seconds"] = round(time.monotonic() - started, 1)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        console.print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def _labels(df: pl.DataFrame, path: Path | None) -> list[LabelMessage]:
    """The labels of ``path`` (written from ``df`` first if it does not exist), else built
    (messages on stderr: ``--json`` keeps stdout to the result)."""
    if path is not None and path.is_file():
        read = read_labels(path, source="simulator")
        if read.skipped:
            err_console.print(f"[yellow]{read.skipped:,} label row(s) of {path} skipped[/]")
        err_console.print(f"{len(read.labels):,} labels read from {path}", highlight=False)
        return read.labels
    built = fdh_labels(df)
    if path is not None:
        pq.write_table(label_table(built), path)
        err_console.print(
            f"{len(built):,} labels written to {path} (TX_FRAUD, known 7 days later)",
            highlight=False,
        )
    return built
