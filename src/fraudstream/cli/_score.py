"""``fraudstream score FILE --out FILE``: every row of a transaction file scored by a bundle.

The rows are read as ``replay`` reads them (same columns, mapping and order) and scored as the
detector scores them once replayed (``model._score``): same feature engine, same labels (the
labels file ``replay`` would send), same bundle, thresholds and reason codes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fraudstream.cli._app import app, console, err_console, fail, load_settings
from fraudstream.cli._model import serving_bundle
from fraudstream.cli._schema_opts import SchemaOption, resolve_schema
from fraudstream.config import Settings
from fraudstream.features import partition_of
from fraudstream.model._bundle import Bundle
from fraudstream.model._score import (
    Scored,
    check_format,
    complete_from,
    file_batch,
    score_history,
)
from fraudstream.schema import DECISIONS, LabelMessage, ScoredBatch, TxBatch, read_labels
from fraudstream.schema._files import read_transactions
from fraudstream.simulate import labels_path
from fraudstream.sinks._rows import reasons_json

__all__ = ["score", "scored_frame"]

_WRITERS = (".csv", ".parquet")


def scored_frame(history: TxBatch, scored: Scored, version: str) -> pl.DataFrame:
    """One row per transaction: id, event time, score, decision, reasons (the store's JSON),
    model version, and the file's fraud column as ``label`` where it has one (-1: none)."""
    frame = pl.DataFrame(
        {
            "tx_id": history.tx_id,
            "event_time_ms": history.event_time_ms,
            "score": scored.score,
            "decision": pl.Series(scored.decision).replace_strict(
                list(range(len(DECISIONS))), list(DECISIONS), return_dtype=pl.String
            ),
            "reasons": [reasons_json(r) for r in scored.reasons],
            "model_version": pl.repeat(version, len(history), eager=True, dtype=pl.String),
        }
    )
    if (history.label >= 0).any():
        frame = frame.with_columns(pl.Series("label", history.label))
    return frame


def _labels(
    settings: Settings, data: Path, given: Path | None, skip: bool, history: TxBatch
) -> list[LabelMessage]:
    """The labels ``replay`` would send with ``data``: ``given``, else the file beside it, else
    none; completed from the file's rows like replay's. Never the file's fraud column."""
    where = given if given is not None else labels_path(data)
    if skip or not where.is_file():
        if given is not None and not skip:
            raise fail(f"labels file {given} not found")
        console.print("no labels: every label feature is 0, as in a detector that read none")
        return []
    columns = dict(settings.labels.columns) if given is not None else None
    done = complete_from(history, read_labels(where, columns=columns).labels)
    console.print(f"{len(done):,} labels read from {where}", highlight=False)
    return done


def _with_rules(
    settings: Settings, bundle: Bundle, history: TxBatch, scored: Scored
) -> tuple[Scored, list[tuple[str, ...]]]:
    """``scored`` with the decisions after the live rules and lists of the store (as ``detect``
    applies them after the model's thresholds), the final decisions explained, and the live
    rules fired per row."""
    from fraudstream.sinks import RuleStore
    from fraudstream.stream._rules import LiveRules

    store = RuleStore(settings.store_url(), schema=settings.store.pg_schema)
    live = LiveRules(store, bundle).start()
    try:
        batch = ScoredBatch(
            tx=history,
            feature_names=bundle.feature_names,
            features=scored.features,
            score=scored.score,
            decision=scored.decision,
            reasons=[],
            model_version=bundle.version,
            partition=partition_of(history.account, settings.kafka.partitions),
            offset=np.arange(len(history), dtype=np.int64),
            processed_at_ms=time.time_ns() // 1_000_000,
        )
        decided = live.decide(batch)
        version = live.version
    finally:
        live.close()
    console.print(f"{bundle.mode} rule set version {version} applied" if version else "no rules")
    if decided is None:  # no live or shadow rule
        return _explained(bundle, scored, scored.decision), [() for _ in range(len(history))]
    return _explained(bundle, scored, decided.decision), decided.fired


def _explained(bundle: Bundle, scored: Scored, decision: npt.NDArray[np.int8]) -> Scored:
    """``scored`` with its final ``decision`` and their reasons, as the detector explains them."""
    return Scored(
        scored.features, scored.score, decision, bundle.explain_alerts(scored.features, decision)
    )


def _write(frame: pl.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".parquet":
        frame.write_parquet(tmp)
    else:
        frame.write_csv(tmp)
    tmp.replace(out)


def _replay_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


@app.command()
def score(
    file: Path = typer.Argument(..., help="Transactions (CSV or Parquet, PaySim or card)."),
    out: Path = typer.Option(..., help="Where to write the scores: .csv or .parquet."),
    model: Path | None = typer.Option(
        None, help="The bundle directory (default: the promoted bundle)."
    ),
    data_format: str | None = typer.Option(
        None, "--format", help="paysim or card (default: told by the columns)."
    ),
    schema: SchemaOption = None,
    labels: Path | None = typer.Option(
        None,
        help="Labels for the label features (columns as `labels import` reads) (default: "
        "FILE.labels.parquet / .csv beside FILE, as replay sends it, if there is one).",
    ),
    no_labels: bool = typer.Option(False, "--no-labels", help="Use no labels."),
    rules: bool = typer.Option(
        False,
        "--rules",
        help="Apply the live rules and lists of the store (FRAUDSTREAM_STORE__URL) after the "
        "model's thresholds, as detect does; adds the rules fired as rules_fired.",
    ),
) -> None:
    """Score every row of FILE as the detector would once it is replayed: score, decision
    (allow/review/block), reason codes and model version per transaction. The file's own fraud
    column is copied as `label` for evaluation; it never reaches a feature."""
    if out.suffix.lower() not in _WRITERS:
        raise typer.BadParameter("the output must end in .csv or .parquet", param_hint="--out")
    if data_format not in (None, "paysim", "card"):
        raise typer.BadParameter("format must be paysim or card", param_hint="--format")
    settings = load_settings()
    declaration = resolve_schema(schema, settings)
    started = time.monotonic()
    bundle = Bundle.load(model or serving_bundle(settings.models_dir))
    with console.status(f"reading and ordering {file.name}…"):
        read = read_transactions(file, data_format, schema=declaration)  # type: ignore[arg-type]
    check_format(bundle, read.format)
    history = file_batch(read)
    found = _labels(settings, file, labels, no_labels, history)
    with _replay_bar() as bar:
        task = bar.add_task(f"features ({bundle.mode}) and scores", total=len(history))
        scored = score_history(
            bundle,
            history,
            labels=found,
            partitions=settings.kafka.partitions,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            explain=not rules,
        )
    fired: list[tuple[str, ...]] | None = None
    if rules:
        scored, fired = _with_rules(settings, bundle, history, scored)
    frame = scored_frame(history, scored, bundle.version)
    if fired is not None:
        frame = frame.with_columns(pl.Series("rules_fired", [",".join(f) for f in fired]))
    _write(frame, out)
    counts = [int((scored.decision == i).sum()) for i in range(len(DECISIONS))]
    skipped = f"; {read.skipped:,} bad rows skipped" if read.skipped else ""
    console.print(
        f"scored {len(history):,} transactions of {file} with {bundle.version} in "
        f"{time.monotonic() - started:.1f} s: "
        + ", ".join(f"{n:,} {d}" for d, n in zip(DECISIONS, counts, strict=True))
        + f"{skipped}; written to {out}",
        highlight=False,
    )
