"""``fraudstream train``: a versioned model bundle from a history file or simulated history."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.config import Settings
from fraudstream.model import Bundle, Costs, latest_bundle, train_bundle
from fraudstream.model._data import read_history
from fraudstream.model._report import write_report
from fraudstream.schema import TxBatch
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
    bundle = _train(history, settings, mode=mode, seed=seed, gap_ms=gap_ms)
    _save_with_report(bundle, settings)
    _print_metrics(bundle)
    return bundle


def _train(history: TxBatch, settings: Settings, *, mode: str, seed: int, gap_ms: int) -> Bundle:
    """:func:`train_bundle` with a progress bar over the feature replay."""
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        task = bar.add_task(f"feature replay ({mode}), then training", total=len(history))
        return train_bundle(
            history,
            mode=mode,
            costs=_costs(settings),
            seed=seed,
            gap_ms=gap_ms,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            partitions=settings.kafka.partitions,
        )


def _save_with_report(bundle: Bundle, settings: Settings) -> None:
    path = bundle.save(settings.models_dir)
    with console.status("writing the report (plots)…"):
        write_report(bundle)
    console.print(f"model bundle [bold]{bundle.version}[/] written to {path} (report.html)")


def _costs(settings: Settings) -> Costs:
    c = settings.costs
    return Costs(
        missed_fraud_share=c.missed_fraud_share,
        review_cost=c.review_cost,
        blocked_good_cost=c.blocked_good_cost,
        max_alert_share=c.max_alert_share,
    )


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


_SHOWN = (
    ("average_precision", "average precision"),
    ("roc_auc", "ROC AUC"),
    ("precision_at_100", "precision@100"),
    ("recall_at_1pct_fpr", "recall @ 1% FPR"),
    ("alerts", "alerts (review+block)"),
)


def _print_metrics(bundle: Bundle) -> None:
    m = bundle.metrics
    data = m.get("data", {})
    table = Table(title=f"held-out test set, after the training period — {bundle.version}")
    table.add_column("metric")
    for model in ("lightgbm", "logreg"):
        table.add_column(model, justify="right")
    for key, label in _SHOWN:
        table.add_row(label, *(_fmt(m.get(model, {}).get(key)) for model in ("lightgbm", "logreg")))
    for step in ("review", "block"):
        for what in ("precision", "recall"):
            row = [
                _fmt(m.get(model, {}).get(step, {}).get(what)) for model in ("lightgbm", "logreg")
            ]
            table.add_row(f"{what} at the {step} threshold", *row)
    console.print(table)
    console.print(
        f"train {data.get('train_rows', '?'):,} rows ({data.get('train_frauds', '?')} frauds), "
        f"test {data.get('test_rows', '?'):,} rows ({data.get('test_frauds', '?')} frauds), "
        f"gap {data.get('gap_ms', 0) / 1000:.0f} s"
    )
    t = bundle.thresholds
    console.print(f"thresholds from costs: review ≥ {t.review:.4f}, block ≥ {t.block:.4f}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


@app.command()
def train(
    data: Path | None = typer.Argument(
        None, help="Labelled history (CSV or Parquet); simulated history if omitted."
    ),
    data_format: str = typer.Option(
        "paysim", "--format", help="paysim (Kaggle columns) or card (the handbook's layout)."
    ),
    rows: int = typer.Option(500_000, help="Rows of simulated history to train on (no DATA)."),
    mode: str = typer.Option(
        "pre_auth", help="pre_auth (no post-transaction balances) or post_tx (PaySim only)."
    ),
    seed: int = typer.Option(1, help="Seed of the simulated history and of the models."),
    gap_ms: int | None = typer.Option(
        None,
        help="Gap between the train and test parts (label delay); default 1 min "
        "simulated, 1 h PaySim file, 7 days card file.",
    ),
    mlflow_uri: str = typer.Option(
        "", "--mlflow-uri", help="Log params, metrics and the bundle to this MLflow tracking URI."
    ),
) -> None:
    """Train LightGBM and a logistic-regression baseline; write a versioned bundle."""
    if mode not in ("pre_auth", "post_tx"):
        raise typer.BadParameter("mode must be pre_auth or post_tx", param_hint="--mode")
    if data_format not in ("paysim", "card"):
        raise typer.BadParameter("format must be paysim or card", param_hint="--format")
    settings = load_settings()
    started = time.monotonic()
    if data is None:
        bundle = train_from_simulation(
            settings, rows=rows, mode=mode, seed=seed, gap_ms=60_000 if gap_ms is None else gap_ms
        )
    else:
        bundle = _train_from_file(settings, data, data_format, mode, seed, gap_ms)
    console.print(f"trained in {time.monotonic() - started:.1f} s")
    if mlflow_uri:
        from fraudstream.model._tracking import log_bundle

        run_id = log_bundle(bundle, mlflow_uri)
        console.print(f"logged to MLflow {mlflow_uri}: run {run_id}")


def _train_from_file(
    settings: Settings, data: Path, data_format: str, mode: str, seed: int, gap_ms: int | None
) -> Bundle:
    if not data.is_file():
        raise fail(f"no such file: {data}")
    with console.status(f"reading {data}…"):
        columns = settings.replay.columns  # FRAUDSTREAM_REPLAY__COLUMNS__*: files read alike
        history = read_history(data, data_format, columns=columns)  # type: ignore[arg-type]
    if data_format == "card":
        mode, default_gap = "card", 7 * 86_400_000
    else:
        default_gap = 3_600_000
    console.print(f"{len(history):,} transactions read from {data}")
    gap = default_gap if gap_ms is None else gap_ms
    bundle = _train(history, settings, mode=mode, seed=seed, gap_ms=gap)
    _save_with_report(bundle, settings)
    _print_metrics(bundle)
    return bundle
