"""``fraudstream model list | promote``: the bundles under models/ and which one is in service.

A trained bundle is a *candidate*; ``promote`` puts it in service (``detect`` without ``--model``
loads it, running detectors switch to it); the one it replaces becomes *retired*. The state is
``models/promotion.json`` (see :mod:`fraudstream.model._registry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.errors import ModelError
from fraudstream.model import latest_bundle, list_bundles, promote

__all__ = ["serving_bundle"]

model_app = typer.Typer(
    help="List model bundles (candidate / promoted / retired) and promote one.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


def serving_bundle(models_dir: Path) -> Path:
    """The promoted bundle's directory, or a one-line failure telling the user what to run."""
    try:
        path = latest_bundle(models_dir)
    except ModelError as exc:
        raise fail(str(exc)) from exc
    if path is not None:
        return path
    candidates = [b for b in list_bundles(models_dir) if b.status != "promoted"]
    if not candidates:
        raise fail(f"no model bundle under {models_dir}; run `fraudstream train --promote` first")
    newest = candidates[-1].version
    raise fail(
        f"no promoted model bundle under {models_dir} ({len(candidates)} not in service, newest "
        f"{newest}); review `fraudstream model list`, then run "
        f"`fraudstream model promote {newest}`"
    )


@model_app.command("list")
def list_models() -> None:
    """Every bundle, oldest first: status, scoring model, key test metrics, creation time."""
    settings = load_settings()
    bundles = list_bundles(settings.models_dir)
    if not bundles:
        console.print(f"no model bundle under {settings.models_dir}")
        return
    table = Table(title=f"model bundles under {settings.models_dir}")
    for column in ("version", "status", "scoring model", "created (UTC)"):
        table.add_column(column)
    for column in ("test frauds", "avg precision", "ROC AUC", "expected cost"):
        table.add_column(column, justify="right")
    for b in bundles:
        metrics: dict[str, Any] = b.manifest.get("metrics", {})
        chosen = metrics.get(b.scoring_model, {})
        meaningful = b.manifest.get("metrics_meaningful", True)
        status = {"promoted": "[bold green]promoted[/]", "retired": "[dim]retired[/]"}
        table.add_row(
            b.version,
            status.get(b.status, b.status),
            b.scoring_model,
            b.created_at[:19].replace("T", " "),
            str(metrics.get("data", {}).get("test_frauds", "?"))
            + ("" if meaningful else " [red](too few)[/]"),
            _fmt(chosen.get("average_precision")),
            _fmt(chosen.get("roc_auc")),
            _fmt(chosen.get("expected_cost"), "{:,.0f}"),
        )
    console.print(table)


def _fmt(value: object, spec: str = "{:.4f}") -> str:
    return spec.format(value) if isinstance(value, int | float) else "n/a"


@model_app.command("promote")
def promote_model(
    version: str = typer.Argument(..., help="The bundle to put in service (see `model list`)."),
    force: bool = typer.Option(
        False, help="Promote even a bundle whose test metrics are marked not meaningful."
    ),
) -> None:
    """Put a bundle in service: `detect` loads it and running detectors switch to it."""
    settings = load_settings()
    found = {b.version: b for b in list_bundles(settings.models_dir)}
    entry = found.get(version)
    if entry is not None and entry.manifest.get("metrics_meaningful") is False and not force:
        frauds = entry.manifest.get("metrics", {}).get("data", {}).get("test_frauds", "?")
        raise fail(
            f"bundle {version} was trained with --allow-few-frauds ({frauds} test frauds): its "
            "metrics are not meaningful; pass --force to promote it anyway"
        )
    previous = latest_bundle(settings.models_dir)
    path = promote(settings.models_dir, version)
    was = f" (replaces {previous.name}, now retired)" if previous and previous != path else ""
    console.print(f"promoted [bold]{version}[/]{was}: running detectors switch to it")
