"""``fraudstream model list | promote | rollback``: the bundles under models/ and which one is in
service.

A trained bundle is a *candidate*; ``promote`` puts it in service (``detect`` without ``--model``
loads it, running detectors switch to it); the one it replaces becomes *retired*; ``rollback``
puts the previous promoted version back. A *challenger* (``fraudstream retrain``) is scored in
shadow. The state is ``models/promotion.json`` (see :mod:`fraudstream.model._registry`); every
promotion and rollback is also a row of the store's ``model_events``, which ``list`` shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.config import Settings
from fraudstream.errors import FraudstreamError, ModelError
from fraudstream.model import latest_bundle, list_bundles, promote
from fraudstream.model._registry import rollback
from fraudstream.sinks._model_events import model_events, record_model_event
from fraudstream.sinks._sqlconn import SqlConnection

__all__ = ["serving_bundle"]

model_app = typer.Typer(
    help="List model bundles (candidate / promoted / challenger / retired), promote, roll back.",
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
def list_models(
    events: int = typer.Option(10, help="Show the store's latest model events (0: none)."),
) -> None:
    """Every bundle, oldest first: status, scoring model, key test metrics, creation time; then
    the latest retrain steps (trained, evaluated, shadow, promoted, rejected, rolled back)."""
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
        status = {
            "promoted": "[bold green]promoted[/]",
            "challenger": "[bold yellow]challenger[/]",
            "retired": "[dim]retired[/]",
        }
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
    if events:
        _print_events(settings, events)


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
    champion = previous.name if previous else None
    _record(settings, version, "promoted", champion, {"reason": "by hand (model promote)"})


@model_app.command("rollback")
def rollback_model(
    mlflow_uri: str | None = typer.Option(
        None, help="Also move the MLflow registry's champion alias back."
    ),
) -> None:
    """Put the previous promoted version back in service (running detectors switch to it)."""
    settings = load_settings()
    try:
        undone, back = rollback(settings.models_dir)
    except ModelError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"rolled back [bold]{undone}[/] to [bold]{back}[/]: running detectors switch to it"
    )
    _record(settings, undone, "rolled_back", back, {"reason": "model rollback", "to": back})
    if mlflow_uri:
        from fraudstream.model._retrain_tracking import track_transition

        track_transition(mlflow_uri, undone, "rolled_back")
        track_transition(mlflow_uri, back, "rolled_back_to")


@contextmanager
def _store(settings: Settings) -> Iterator[SqlConnection]:
    db = SqlConnection(settings.store_url(), schema=settings.store.pg_schema)
    db.open()
    try:
        yield db
    finally:
        db.close()


def _record(
    settings: Settings, version: str, event: str, champion: str | None, detail: dict[str, Any]
) -> None:
    """A row of the store's ``model_events``; a store that cannot be written is only warned."""
    try:
        with _store(settings) as db:
            record_model_event(db, version, event, champion=champion, detail=detail)
    except FraudstreamError as exc:
        console.print(f"[yellow]warning:[/] the step was not recorded in the store: {exc}")


def _print_events(settings: Settings, limit: int) -> None:
    """The store's latest model events, if it can be read."""
    from fraudstream.cli._retrain import events_table

    try:
        with _store(settings) as db:
            found = model_events(db, limit=limit)
    except FraudstreamError as exc:
        console.print(f"model events unavailable: {exc}")
        return
    if found:
        console.print(events_table(found, title="model events (latest)"))
