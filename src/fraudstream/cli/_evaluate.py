"""``fraudstream evaluate``: the Fraud Detection Handbook's protocols on its card data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from fraudstream.cli._app import app, console, fail
from fraudstream.model._fdh import fdh_features, load_fdh, run_ch3, run_ch5

__all__ = ["evaluate"]


@app.command()
def evaluate(
    data: Path = typer.Argument(..., help="The handbook's transactions (parquet)."),
    protocol: str = typer.Option("fdh-ch3", help="fdh-ch3 (baseline) or fdh-ch5 (prequential)."),
    model: str = typer.Option("logreg", help="logreg or lgbm."),
    features: str = typer.Option(
        "", help="fdh (the handbook's 15) or rich (ours too); default fdh for ch3, rich for ch5."
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
    with console.status("replaying the history through the card feature engine…"):
        d = fdh_features(load_fdh(data))
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
