"""``fraudstream train``: a versioned model bundle from a history file or simulated history."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import Progress
from rich.table import Table

from fraudstream.cli._app import app, console, fail, load_settings
from fraudstream.cli._model import serving_bundle
from fraudstream.cli._schema_opts import SchemaOption, resolve_schema
from fraudstream.config import Settings
from fraudstream.features import ExtraField
from fraudstream.model import MIN_TEST_FRAUDS, Bundle, Costs, promote, train_bundle
from fraudstream.model._data import declared_extras, read_labelled
from fraudstream.model._registry import bundle_dirs
from fraudstream.model._report import write_report
from fraudstream.model._score import complete_from
from fraudstream.schema import LabelMessage, TxBatch, read_labels
from fraudstream.schema._declare import SchemaDeclaration
from fraudstream.simulate import PaySimSimulator
from fraudstream.simulate._labels import batch_labels
from fraudstream.simulate._write import labels_path

__all__ = ["ensure_model", "train_from_simulation"]

#: The simulated history's default train/test gap: a minute, at most a tenth of its span.
_SIM_GAP_MS = 60_000


def train_from_simulation(
    settings: Settings,
    *,
    rows: int,
    mode: str,
    seed: int,
    gap_ms: int | None = None,
    allow_few_frauds: bool = False,
    refit: bool = False,
) -> Bundle:
    """Simulate ``rows`` of history with the live stream's parameters and train on it.

    At 500 tx/s a million rows span ~33 simulated minutes, so the train/test gap is a minute by
    default (longer than the robots' cash-out delays, short against the history), and at most a
    tenth of the history's span, so a short history keeps a training part.
    """
    sim = settings.simulate
    with console.status(f"simulating {rows:,} transactions of history…"):
        history = PaySimSimulator(
            accounts=sim.accounts, seed=seed, rate_per_s=sim.rate if sim.rate > 0 else 500.0
        ).history(rows)
    if gap_ms is None:
        span_ms = int(history.event_time_ms.max() - history.event_time_ms.min()) if rows else 0
        gap_ms = min(_SIM_GAP_MS, span_ms // 10)
    # the labels the live simulator would send for this history (same mix and seed rule)
    labels = batch_labels(history, seed=seed)
    bundle = _train(
        history,
        settings,
        mode=mode,
        seed=seed,
        gap_ms=gap_ms,
        allow_few_frauds=allow_few_frauds,
        labels=labels,
        refit=refit,
    )
    _save_with_report(bundle, settings)
    _print_metrics(bundle)
    return bundle


def _train(
    history: TxBatch,
    settings: Settings,
    *,
    mode: str,
    seed: int,
    gap_ms: int,
    allow_few_frauds: bool = False,
    labels: list[LabelMessage] | None = None,
    refit: bool = False,
    extras: Sequence[ExtraField] = (),
) -> Bundle:
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
            refuse_few_frauds=not allow_few_frauds,
            labels=labels or (),
            refit=refit,
            extras=extras,
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
    """The promoted bundle; with no bundle at all, a first one trained and promoted.

    Candidates without a promoted bundle are the user's to review: a one-line failure says
    which ``fraudstream model promote`` to run.
    """
    if not bundle_dirs(settings.models_dir):
        console.print("no model bundle yet: training a first one on simulated history")
        bundle = train_from_simulation(
            settings, rows=rows, mode="pre_auth", seed=settings.simulate.seed + 1
        )
        promote(settings.models_dir, bundle.version)
        console.print(f"promoted [bold]{bundle.version}[/], the first model, into service")
    return serving_bundle(settings.models_dir)


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
    quality = m.get("quality", {})
    meaningful = quality.get("meaningful", True)
    title = f"held-out test set, after the training period — {bundle.version}"
    if not meaningful:
        title += f" — NOT MEANINGFUL: {data.get('test_frauds')} test frauds"
    table = Table(title=title)
    table.add_column("metric")
    for model in _MODELS:
        table.add_column(_heading(bundle, model), justify="right")
    for key, label in _SHOWN:
        table.add_row(label, *(_cell(m.get(model, {}).get(key), meaningful) for model in _MODELS))
    for step in ("review", "block"):
        for what in ("precision", "recall"):
            row = [_cell(m.get(model, {}).get(step, {}).get(what), meaningful) for model in _MODELS]
            table.add_row(f"{what} at the {step} threshold", *row)
    console.print(table)
    console.print(
        f"fit {data.get('fit_rows', 0):,} rows ({data.get('fit_frauds', '?')} frauds), "
        f"calibration {data.get('calibration_rows', 0):,} ({data.get('calibration_frauds', '?')}), "
        f"validation {data.get('validation_rows', 0):,} ({data.get('validation_frauds', '?')}), "
        f"gap {data.get('gap_ms', 0) / 1000:.0f} s, "
        f"test {data.get('test_rows', 0):,} ({data.get('test_frauds', '?')} frauds)"
    )
    _print_refit(m.get("refit"))
    _print_selection(bundle)
    t = bundle.thresholds
    console.print(
        f"thresholds of {bundle.scoring_model} from costs: review ≥ {_threshold(t.review)}, "
        f"block ≥ {_threshold(t.block)}"
    )
    for warning in quality.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {warning}")


_MODELS = ("lightgbm", "logreg")


def _heading(bundle: Bundle, model: str) -> str:
    return f"{model} (scores)" if model == bundle.scoring_model else model


def _print_selection(bundle: Bundle) -> None:
    """The validation part's evidence and the reason for the scoring model."""
    selection = bundle.metrics.get("selection")
    if not selection:
        return
    table = Table(title="validation part (end of the training period): model selection")
    table.add_column("metric")
    for model in _MODELS:
        table.add_column(_heading(bundle, model), justify="right")
    val = selection["validation"]
    table.add_row("expected cost", *(f"{val[m]['expected_cost']:,.0f}" for m in _MODELS))
    for key, label in _SHOWN[:2]:
        table.add_row(label, *(_fmt(val[m].get(key)) for m in _MODELS))
    table.add_row("alerts (review+block)", *(_fmt(val[m].get("alerts")) for m in _MODELS))
    console.print(table)
    console.print(f"scoring model: [bold]{selection['chosen']}[/] — {selection['reason']}")


def _print_refit(refit: dict[str, Any] | None) -> None:
    """What the shipped models were refit on (``train --refit``)."""
    if refit:
        console.print(
            f"[bold]refit:[/] the shipped models were fitted again on all {refit['rows']:,} "
            f"labelled rows ({refit['frauds']:,} frauds) from {_utc(refit['start_ms'])} to "
            f"{_utc(refit['end_ms'])}, with the validated parameters, calibration and "
            "thresholds; the figures above are the validated models'"
        )


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _threshold(value: float) -> str:
    return "never" if value > 1.0 else f"{value:.4f}"


def _cell(value: object, meaningful: bool) -> str:
    return _fmt(value) if meaningful else f"[dim]{_fmt(value)}[/] not meaningful"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


@app.command()
def train(
    data: Path | None = typer.Argument(
        None, help="Labelled history (CSV or Parquet); simulated history if omitted."
    ),
    data_format: str | None = typer.Option(
        None,
        "--format",
        help="paysim (Kaggle columns) or card (the handbook's layout) (default: the format "
        "--schema declares, else the one DATA's columns tell).",
    ),
    schema: SchemaOption = None,
    rows: int = typer.Option(500_000, help="Rows of simulated history to train on (no DATA)."),
    mode: str = typer.Option(
        "pre_auth", help="pre_auth (no post-transaction balances) or post_tx (PaySim only)."
    ),
    seed: int = typer.Option(1, help="Seed of the simulated history and of the models."),
    gap_ms: int | None = typer.Option(
        None,
        help="Gap between the train and test parts (label delay); default 1 min "
        "simulated (at most a tenth of its span), 1 h PaySim file, 7 days card file.",
    ),
    allow_few_frauds: bool = typer.Option(
        False,
        help=f"Train even when the test part has fewer than {MIN_TEST_FRAUDS} frauds; the "
        "bundle is marked: its metrics are not meaningful.",
    ),
    promote_it: bool = typer.Option(
        False, "--promote", help="Put the new bundle in service at once (it is a candidate else)."
    ),
    mlflow_uri: str = typer.Option(
        "", "--mlflow-uri", help="Log params, metrics and the bundle to this MLflow tracking URI."
    ),
    labels: Path | None = typer.Option(
        None,
        help="Labels of DATA (CSV or Parquet, as `labels import` reads): the label features "
        "replay them by their times (default: DATA.labels.parquet / .csv beside DATA; "
        "without one, DATA's fraud column, each fraud known --label-delay-days later).",
    ),
    label_delay_days: float = typer.Option(
        7.0, help="Without a labels file: days after a fraud until it is known (handbook: 7)."
    ),
    refit: bool = typer.Option(
        False,
        help="After validation and test, fit both models again on all the history (same "
        "parameters, calibration and thresholds); the report keeps the validated figures.",
    ),
) -> None:
    """Train LightGBM and a logistic baseline; the better on validation scores. A new bundle
    is a candidate until `fraudstream model promote VERSION` (or --promote)."""
    if mode not in ("pre_auth", "post_tx"):
        raise typer.BadParameter("mode must be pre_auth or post_tx", param_hint="--mode")
    if data_format not in (None, "paysim", "card"):
        raise typer.BadParameter("format must be paysim or card", param_hint="--format")
    settings = load_settings()
    started = time.monotonic()
    if data is None:
        bundle = train_from_simulation(
            settings,
            rows=rows,
            mode=mode,
            seed=seed,
            gap_ms=gap_ms,
            allow_few_frauds=allow_few_frauds,
            refit=refit,
        )
    else:
        bundle = _train_from_file(
            settings,
            data,
            data_format,
            resolve_schema(schema, settings),
            mode,
            seed,
            gap_ms,
            allow_few_frauds=allow_few_frauds,
            labels=labels,
            label_delay_ms=int(label_delay_days * 86_400_000),
            refit=refit,
        )
    console.print(f"trained in {time.monotonic() - started:.1f} s")
    if promote_it:
        promote(settings.models_dir, bundle.version)
        console.print(f"promoted [bold]{bundle.version}[/]: running detectors switch to it")
    else:
        console.print(
            f"{bundle.version} is a candidate: `fraudstream model promote {bundle.version}` "
            "puts it in service"
        )
    if mlflow_uri:
        from fraudstream.model._tracking import log_bundle

        run_id = log_bundle(bundle, mlflow_uri)
        console.print(f"logged to MLflow {mlflow_uri}: run {run_id}")


def _train_from_file(
    settings: Settings,
    data: Path,
    data_format: str | None,
    schema: SchemaDeclaration,
    mode: str,
    seed: int,
    gap_ms: int | None,
    *,
    allow_few_frauds: bool = False,
    labels: Path | None = None,
    label_delay_ms: int = 7 * 86_400_000,
    refit: bool = False,
) -> Bundle:
    if not data.is_file():
        raise fail(f"no such file: {data}")
    with console.status(f"reading {data}…"):  # the same schema as replay, score and evaluate
        history, fmt = read_labelled(data, data_format, schema=schema)  # type: ignore[arg-type]
    if fmt == "card":
        mode, default_gap = "card", 7 * 86_400_000
    else:
        default_gap = 3_600_000
    console.print(f"{len(history):,} transactions read from {data}")
    gap = default_gap if gap_ms is None else gap_ms
    bundle = _train(
        history,
        settings,
        mode=mode,
        seed=seed,
        gap_ms=gap,
        allow_few_frauds=allow_few_frauds,
        labels=_file_labels(history, data, labels, label_delay_ms, settings),
        refit=refit,
        extras=declared_extras(schema, history, fmt),
    )
    _save_with_report(bundle, settings)
    _print_metrics(bundle)
    return bundle


def _file_labels(
    history: TxBatch, data: Path, given: Path | None, delay_ms: int, settings: Settings
) -> list[LabelMessage]:
    """The labels of a history file: ``given``, else the file beside it, else its fraud column
    known ``delay_ms`` after each transaction. Labels lacking their transaction's account,
    counterparty or time are completed from the history."""
    where = given if given is not None else labels_path(data)
    if not where.is_file():
        if given is not None:
            raise fail(f"labels file {given} not found")
        frauds = np.flatnonzero(history.label == 1).tolist()
        console.print(
            f"no labels file beside {data.name}: its {len(frauds):,} frauds are taken as labels "
            f"known {delay_ms / 86_400_000:g} days after each transaction (--labels FILE to "
            "give the real ones)",
            highlight=False,
        )
        return [
            LabelMessage(
                history.tx_id[i],
                1,
                int(history.event_time_ms[i]) + delay_ms,
                account=history.account[i],
                counterparty=history.counterparty[i],
                tx_time_ms=int(history.event_time_ms[i]),
                source="simulator",
            )
            for i in frauds
        ]
    read = read_labels(where, columns=dict(settings.labels.columns) or None)
    done = complete_from(history, read.labels)
    console.print(f"{len(done):,} labels read from {where}", highlight=False)
    return done
