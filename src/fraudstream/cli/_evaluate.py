"""``fraudstream evaluate``: a time split of the user's choosing on any transaction file, or the
Fraud Detection Handbook's protocols on its card data (presets)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import typer
from rich.table import Table

from fraudstream.cli._app import app, console, err_console, fail, load_settings
from fraudstream.cli._backtest import parse_time
from fraudstream.cli._lists import parse_ttl_ms
from fraudstream.cli._schema_opts import SchemaOption, resolve_schema
from fraudstream.cli._train import _costs, _file_labels, _threshold
from fraudstream.config import Settings
from fraudstream.model._bundle import Bundle
from fraudstream.model._fdh import fdh_features, fdh_labels, load_fdh, run_ch3, run_ch5
from fraudstream.schema import LabelMessage, TxBatch, read_labels
from fraudstream.simulate._labels import label_table

__all__ = ["Period", "SplitOptions", "evaluate", "time_split_result"]

#: ``--model`` names -> the bundle's model names.
_MODELS = {"lgbm": "lightgbm", "logreg": "logreg"}
_SHOWN = (
    ("average_precision", "average precision"),
    ("roc_auc", "ROC AUC"),
    ("recall_at_1pct_fpr", "recall at 1% FPR"),
    ("precision_at_100", "precision@100"),
    ("alerts", "alerts (review+block)"),
    ("expected_cost", "expected cost"),
    ("expected_cost_allow_all", "expected cost, allowing all"),
)


@app.command()
def evaluate(
    data: Path = typer.Argument(
        ...,
        help="Transactions with a fraud column (CSV or Parquet); for --protocol the "
        "handbook's parquet.",
    ),
    train_until: str | None = typer.Option(
        None,
        help="Time split: train on the rows whose label is known by then (event time + "
        "--label-delay); a date, date-time (UTC unless it says otherwise) or ms.",
    ),
    test_from: str | None = typer.Option(
        None, help="Time split: test on the rows from then (default: --train-until)."
    ),
    test_until: str | None = typer.Option(
        None, help="Time split: test on the rows before then (default: to the end)."
    ),
    label_delay: str = typer.Option(
        "7d", help="Time split: how long after a transaction its label is known (30m, 12h, 7d)."
    ),
    data_format: str | None = typer.Option(
        None,
        "--format",
        help="Time split: paysim or card (default: the format --schema declares, else the one "
        "DATA's columns tell).",
    ),
    mode: str = typer.Option("pre_auth", help="Time split, PaySim: pre_auth or post_tx."),
    schema: SchemaOption = None,
    seed: int = typer.Option(1, help="Time split: seed of the models."),
    bundle: list[Path] = typer.Option(
        [],
        help="Measure this trained bundle (a directory under models/; repeatable, to compare "
        "bundles on the same rows) from --test-from at its own thresholds instead of training; "
        "every earlier row is replayed through the features first.",
    ),
    protocol: str | None = typer.Option(
        None,
        help="fdh-ch3 (baseline) or fdh-ch5 (prequential): the handbook's protocols on its "
        "data (default: fdh-ch3 when no time split is given).",
    ),
    model: str | None = typer.Option(
        None,
        help="logreg or lgbm (default: logreg for a protocol; for a time split the model "
        "train would choose on validation).",
    ),
    features: str = typer.Option(
        "",
        help="Protocols: fdh (the handbook's 15) or rich (ours too); default fdh for ch3, "
        "rich for ch5.",
    ),
    labels: Path | None = typer.Option(
        None,
        help="Labels file (CSV or Parquet, as `labels import` reads); the ground truth stays "
        "DATA's fraud column. Time split: the label features' labels (default: DATA.labels.* "
        "beside DATA, else DATA's frauds known --label-delay later). Protocols: features and "
        "ground truth come from it, never from TX_FRAUD; if FILE does not exist it is written "
        "from TX_FRAUD, each fraud known 7 days later; without --labels those are used in memory.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train on a period and test on a later one of any transaction file (--train-until,
    --test-from), measure a trained bundle from a date (--bundle, --test-from), or reproduce a
    handbook protocol (--protocol); print the test metrics."""
    if model not in (None, *_MODELS):
        raise typer.BadParameter("model must be logreg or lgbm", param_hint="--model")
    started = time.monotonic()
    if train_until is None and test_from is None and not bundle:
        if test_until is not None:
            raise fail("--test-until needs --train-until")
        result = _protocol(data, protocol or "fdh-ch3", model or "logreg", features, labels)
    else:
        if protocol is not None or features:
            raise fail("--protocol and --features are the handbook's; a time split takes neither")
        options = _split_options(
            data_format, mode, schema, labels, seed, model, tuple(bundle), label_delay
        )
        period = _period(train_until, test_from, test_until, bool(bundle))
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result = time_split_result(data, options, period)
    result["seconds"] = round(time.monotonic() - started, 1)
    if as_json:
        typer.echo(json.dumps(result))
    elif result.get("protocol") in ("time-split", "bundle"):
        _print_split(result.get("results", [result]))
    else:
        for key, value in result.items():
            console.print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


@dataclass(frozen=True)
class SplitOptions:
    """How a time split reads DATA (format, PaySim mode, column mapping, labels, label delay)
    and what it measures (a model trained here with ``seed``, or trained ``bundles``)."""

    fmt: str | None
    mode: str
    schema: list[str] | None  # --schema values (resolved with the settings when read)
    labels: Path | None
    seed: int
    model: str | None
    bundles: tuple[Path, ...]
    label_delay_ms: int


@dataclass(frozen=True)
class Period:
    """A time split's times in ms: training until (``None`` with a bundle), test from, until."""

    train_until_ms: int | None
    test_from_ms: int
    test_until_ms: int | None


def _split_options(
    fmt: str | None,
    mode: str,
    schema: list[str] | None,
    labels: Path | None,
    seed: int,
    model: str | None,
    bundles: tuple[Path, ...],
    label_delay: str,
) -> SplitOptions:
    if fmt not in (None, "paysim", "card"):
        raise typer.BadParameter("format must be paysim or card", param_hint="--format")
    if mode not in ("pre_auth", "post_tx"):
        raise typer.BadParameter("mode must be pre_auth or post_tx", param_hint="--mode")
    if bundles and model is not None:
        raise fail("--model chooses a model to train; a --bundle scores with its own")
    return SplitOptions(fmt, mode, schema, labels, seed, model, bundles, _delay_ms(label_delay))


def _period(
    train_until: str | None, test_from: str | None, test_until: str | None, bundles: bool
) -> Period:
    end_ms = None if test_until is None else parse_time(test_until, "--test-until")
    if bundles:
        if train_until is not None:
            raise fail("a --bundle is trained already: give --test-from, not --train-until")
        if test_from is None:
            raise fail("a --bundle is measured from --test-from; give it")
        return Period(None, parse_time(test_from, "--test-from"), end_ms)
    if train_until is None:
        raise fail("a time split needs --train-until")
    until_ms = parse_time(train_until, "--train-until")
    from_ms = until_ms if test_from is None else parse_time(test_from, "--test-from")
    return Period(until_ms, from_ms, end_ms)


def time_split_result(data: Path, options: SplitOptions, period: Period) -> dict[str, Any]:
    """The test metrics of a time split of ``data``, flat as the protocols' results, with the
    split and the data counts: of ``options.model`` trained before ``period.train_until_ms``
    (``None``: the model train would choose on validation), or of ``options.bundles`` (one:
    flat; several: ``results``, one per bundle)."""
    from fraudstream.model._data import declared_extras, read_labelled

    if not data.is_file():
        raise fail(f"no such file: {data}")
    settings = load_settings()
    with console.status(f"reading {data}…"):
        schema = resolve_schema(options.schema, settings)  # as replay, train and score read
        history, fmt = read_labelled(data, options.fmt, schema=schema)  # type: ignore[arg-type]
    console.print(f"{len(history):,} transactions read from {data}", highlight=False)
    found = _file_labels(history, data, options.labels, options.label_delay_ms, settings)
    times = {
        "train_until_ms": period.train_until_ms,
        "test_from_ms": period.test_from_ms,
        "test_until_ms": period.test_until_ms,
        "label_delay_ms": options.label_delay_ms,
    }
    if options.bundles:
        results = [
            {**times, **r}
            for r in _bundle_metrics(options.bundles, history, found, period, settings)
        ]
        return results[0] if len(results) == 1 else {"protocol": "bundle", "results": results}
    assert period.train_until_ms is not None  # _period: given without a bundle
    from fraudstream.model._evaluate_split import evaluate_time_split

    with console.status("feature replay, then training both models…"):
        metrics = evaluate_time_split(
            history,
            mode="card" if fmt == "card" else options.mode,
            train_until_ms=period.train_until_ms,
            test_from_ms=period.test_from_ms,
            test_until_ms=period.test_until_ms,
            label_delay_ms=options.label_delay_ms,
            labels=found,
            costs=_costs(settings),
            seed=options.seed,
            partitions=settings.kafka.partitions,
            extras=declared_extras(schema, history, fmt),
        )
    chosen = metrics["selection"]["chosen"]
    name = chosen if options.model is None else _MODELS[options.model]
    return {
        "protocol": "time-split",
        "model": name,
        "chosen_on_validation": chosen,
        **times,
        **metrics[name],
        "data": metrics["data"],
        "warnings": metrics["quality"]["warnings"],
    }


def _bundle_metrics(
    paths: tuple[Path, ...],
    history: TxBatch,
    labels: list[LabelMessage],
    period: Period,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Trained bundles' test metrics, each at its own thresholds (``evaluate_bundles``)."""
    from fraudstream.model._evaluate_split import evaluate_bundles

    bundles = [Bundle.load(p) for p in paths]
    with console.status(f"feature replay and scores ({bundles[0].mode})…"):
        metrics = evaluate_bundles(
            bundles,
            history,
            test_from_ms=period.test_from_ms,
            test_until_ms=period.test_until_ms,
            labels=labels,
            costs=_costs(settings),
            partitions=settings.kafka.partitions,
        )
    return [
        {"protocol": "bundle", "model": b.scoring_model, "bundle": b.version, **m, "warnings": []}
        for b, m in zip(bundles, metrics, strict=True)
    ]


def _delay_ms(text: str) -> int:
    if text.strip() in ("0", "0s", "0m", "0h", "0d"):
        return 0
    try:
        return parse_ttl_ms(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: write a number and a unit s, m, h, d or w, e.g. 7d",
            param_hint="--label-delay",
        ) from None


def _print_split(results: list[dict[str, Any]]) -> None:
    """One column per result (a trained model, or each bundle), then the split's counts."""
    first = results[0]
    d = first["data"]
    table = Table(title=f"test rows {_when(d['test_start_ms'])} to {_when(d['test_end_ms'])}")
    table.add_column("metric")
    for result in results:
        table.add_column(_heading(result), justify="right")
    for key, label in _SHOWN:
        table.add_row(label, *(_fmt(r.get(key)) for r in results))
    for step in ("review", "block"):
        table.add_row(f"{step} threshold", *(_threshold(r[step]["threshold"]) for r in results))
        for what in ("precision", "recall"):
            cells = (_fmt(r[step].get(what)) for r in results)
            table.add_row(f"{what} at the {step} threshold", *cells)
    console.print(table)
    if "train_rows" not in d:
        console.print(f"{d['test_rows']:,} test rows ({d['test_frauds']:,} frauds)")
        return
    console.print(
        f"trained on {d['train_rows']:,} rows ({d['train_frauds']:,} frauds) from "
        f"{_when(d['train_start_ms'])} to {_when(d['train_end_ms'])}, labels known "
        f"{first['label_delay_ms'] / 86_400_000:g} days after each transaction by "
        f"{_when(first['train_until_ms'])}; tested on {d['test_rows']:,} rows "
        f"({d['test_frauds']:,} frauds)",
        highlight=False,
    )
    for warning in first["warnings"]:
        console.print(f"[bold yellow]warning:[/] {warning}")


def _heading(result: dict[str, Any]) -> str:
    if "bundle" in result:
        return f"{result['bundle']} ({result['model']})"
    chosen = result["model"] == result["chosen_on_validation"]
    return f"{result['model']} ({'chosen on validation' if chosen else 'asked'})"


def _when(ms: int) -> str:
    from fraudstream.cli._rulestore import when

    return when(ms)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _protocol(
    data: Path, protocol: str, model: str, features: str, labels: Path | None
) -> dict[str, Any]:
    """A handbook protocol's AUC ROC, average precision and CP@100 (unchanged presets)."""
    if protocol not in ("fdh-ch3", "fdh-ch5"):
        raise typer.BadParameter("protocol must be fdh-ch3 or fdh-ch5", param_hint="--protocol")
    if features not in ("", "fdh", "rich"):
        raise typer.BadParameter("features must be fdh or rich", param_hint="--features")
    if not data.is_file():
        raise fail(f"no such file: {data}")
    rich = features == "rich" if features else protocol == "fdh-ch5"
    df = load_fdh(data)
    label_records = _labels(df, labels)
    with console.status("replaying the history through the card feature engine…"):
        d = fdh_features(df, label_records)
    with console.status(f"{protocol}: training and scoring {model}…"):
        return (
            run_ch3(d, model, rich)  # type: ignore[arg-type]
            if protocol == "fdh-ch3"
            else run_ch5(d, model, rich)  # type: ignore[arg-type]
        )


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
