"""``fraudstream train``: a versioned model bundle from simulated history."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from fraudstream.cli._app import app, console, load_settings
from fraudstream.config import Settings
from fraudstream.model import Bundle, Costs, latest_bundle, train_bundle
from fraudstream.simulate import PaySimSimulator

__all__ = ["ensure_model", "train_from_simulation"]


def train_from_simulation(
    settings: Settings, *, rows: int, mode: str, seed: int, gap_ms: int = 60_000
) -> Bundle:
    """Simulate ``rows`` of history with the live stream's parameters and train on it.

    At 500 tx/s a million rows span ~33 simulated minutes, so the train/test gap is a minute by
    default: longer than the robots' cash-out delays, short against the history.
    """
    sim = settings.simulate
    with console.status(f"simulating {rows:,} transactions of history…"):
        history = PaySimSimulator(
            accounts=sim.accounts, seed=seed, rate_per_s=sim.rate if sim.rate > 0 else 500.0
        ).history(rows)
    c = settings.costs
    costs = Costs(
        missed_fraud_share=c.missed_fraud_share,
        review_cost=c.review_cost,
        blocked_good_cost=c.blocked_good_cost,
        max_alert_share=c.max_alert_share,
    )
    with console.status("replaying history through the feature engine and training…"):
        bundle = train_bundle(history, mode=mode, costs=costs, seed=seed, gap_ms=gap_ms)
    path = bundle.save(settings.models_dir)
    console.print(f"model bundle [bold]{bundle.version}[/] written to {path}")
    _print_metrics(bundle)
    return bundle


def ensure_model(settings: Settings, *, rows: int = 300_000) -> Path:
    """The newest bundle under ``models_dir``, training a first one if there is none."""
    found = latest_bundle(settings.models_dir)
    if found is not None:
        return found
    console.print("no model bundle yet: training a first one on simulated history")
    bundle = train_from_simulation(
        settings, rows=rows, mode="pre_auth", seed=settings.simulate.seed + 1
    )
    assert bundle.path is not None
    return bundle.path


def _print_metrics(bundle: Bundle) -> None:
    table = Table(title=f"test-set metrics (time-ordered split) — {bundle.version}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(_flatten(bundle.metrics).items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    t = bundle.thresholds
    console.print(f"thresholds from costs: review ≥ {t.review:.4f}, block ≥ {t.block:.4f}")


def _flatten(d: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, int | float | str):
            out[f"{prefix}{k}"] = v
    return out


@app.command()
def train(
    rows: int = typer.Option(500_000, help="Rows of simulated history to train on."),
    mode: str = typer.Option(
        "pre_auth", help="pre_auth (no post-transaction balances) or post_tx."
    ),
    seed: int = typer.Option(1, help="Seed of the simulated history and of the models."),
    gap_ms: int = typer.Option(60_000, help="Gap between the train and test parts (label delay)."),
) -> None:
    """Train LightGBM and a logistic-regression baseline; write a versioned bundle."""
    if mode not in ("pre_auth", "post_tx"):
        raise typer.BadParameter("mode must be pre_auth or post_tx", param_hint="--mode")
    settings = load_settings()
    started = time.monotonic()
    train_from_simulation(settings, rows=rows, mode=mode, seed=seed, gap_ms=gap_ms)
    console.print(f"trained in {time.monotonic() - started:.1f} s")
