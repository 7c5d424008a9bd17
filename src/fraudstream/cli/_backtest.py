"""What ``fraudstream rules backtest`` reads: a transactions file replayed and scored as training
does, or a range of the store (``sinks.load_history``); see docs/rules.md, "Backtests".

Notes go to stderr, so ``--json`` leaves stdout to the document.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl
from rich.progress import Progress

from fraudstream.cli._app import err_console, fail
from fraudstream.cli._rulestore import refuse, when
from fraudstream.config import Settings
from fraudstream.errors import SchemaError
from fraudstream.rules import RuleError, batch_frame
from fraudstream.rules._frame import TX_COLUMNS
from fraudstream.schema import ScoredBatch, TxBatch
from fraudstream.sinks import history_span, load_history

if TYPE_CHECKING:
    from fraudstream.features import LabelBook
    from fraudstream.model import Bundle

__all__ = ["FileInput", "file_history", "parse_time", "store_history"]

_DAY_MS = 86_400_000


def parse_time(text: str, option: str, *, end: bool = False) -> int:
    """``--from``/``--to``: milliseconds since the epoch, an ISO date or date-time (UTC unless
    it says otherwise). A date as ``--to`` (``end``) means the end of that day."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:  # a date: YYYY-MM-DD
            day = dt.date.fromisoformat(text)
            at = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return int(at.timestamp() * 1000) + (_DAY_MS if end else 0)
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise refuse(
            f"{option} {text!r}: write a date (2026-12-01), a date-time (2026-12-01T08:00, UTC "
            "unless it says otherwise) or milliseconds since 1970"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


def store_history(
    settings: Settings, start_ms: int, end_ms: int, columns: Collection[str], ground_truth: bool
) -> pl.DataFrame:
    """The stored transactions of ``[start_ms, end_ms)`` with the columns the rules read."""
    if end_ms <= start_ms:
        raise refuse(f"--to ({when(end_ms)}) must come after --from ({when(start_ms)})")
    url, schema = settings.store_url(), settings.store.pg_schema
    try:
        frame = load_history(
            url, start_ms, end_ms, columns, pg_schema=schema, ground_truth=ground_truth
        )
    except SchemaError as exc:
        raise refuse(str(exc)) from None
    if frame.height == 0:
        span = history_span(url, pg_schema=schema)
        held = (
            "the store holds no transaction"
            if span is None
            else f"the store holds {span[2]:,} from {when(span[0])} to {when(span[1])}"
        )
        raise refuse(f"no stored transaction from {when(start_ms)} to {when(end_ms)}: {held}")
    return frame


@dataclass(frozen=True)
class FileInput:
    """A transactions file to backtest on and how to read it."""

    data: Path
    fmt: str
    mode: str
    labels: Path | None
    ground_truth: bool
    label_delay_days: float
    model: str | None


def file_history(settings: Settings, given: FileInput, columns: Collection[str]) -> pl.DataFrame:
    """``given.data`` read as ``train`` reads it, its features replayed in time order through
    the mode's engine (label features from the labels file, else the fraud column known
    ``label_delay_days`` later, as ``train``), scored by the model when one is given."""
    from fraudstream.cli._train import _file_labels
    from fraudstream.model._data import read_history
    from fraudstream.model._train import bundle_feature_names, label_book, replay
    from fraudstream.simulate import labels_path

    if not given.data.is_file():
        raise fail(f"no such file: {given.data}", code=2)
    bundle = _bundle(settings, given.model, given.mode)
    with err_console.status(f"reading {given.data}…"):
        history = read_history(given.data, given.fmt, columns=settings.replay.columns)  # type: ignore[arg-type]
    err_console.print(f"{len(history):,} transactions read from {given.data}", highlight=False)
    labelled = given.labels or labels_path(given.data)
    with contextlib.redirect_stdout(sys.stderr):  # its notes are not the document
        messages = _file_labels(
            history, given.data, given.labels, int(given.label_delay_days * _DAY_MS), settings
        )
    book = label_book(messages)
    names = bundle_feature_names(given.mode)
    wanted = set(columns) - set(TX_COLUMNS) - {"score"}
    if wanted or bundle is not None:
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task(f"feature replay ({given.mode})", total=len(history))
            x = replay(
                history,
                given.mode,
                lambda done, total: bar.update(task, completed=done, total=total),
                partitions=settings.kafka.partitions,
                labels=book,
            )
    else:
        x = np.zeros((len(history), len(names)), np.float32)
    score = np.full(len(history), np.nan)
    decision = np.zeros(len(history), np.int8)
    if bundle is not None:
        index = {n: i for i, n in enumerate(names)}
        score = bundle.score(np.ascontiguousarray(x[:, [index[n] for n in bundle.feature_names]]))
        decision = bundle.decide(score)
    scored = _scored(history, names, x, score, decision)
    frame = batch_frame(scored, columns)
    verdicts = _verdicts(history, book if labelled.is_file() else None)
    if given.ground_truth:
        verdicts = np.where(verdicts < 0, history.label, verdicts)
    return frame.with_columns(
        pl.Series("event_time_ms", history.event_time_ms),
        pl.Series("amount", history.amount),
        pl.Series("decision", decision, dtype=pl.Int8),
        pl.Series("label", verdicts, dtype=pl.Int8),
    )


def _bundle(settings: Settings, model: str | None, mode: str) -> Bundle | None:
    """The bundle of ``--model`` (a directory, or ``current``: the promoted one), or ``None``."""
    if model is None:
        return None
    from fraudstream.cli._model import serving_bundle
    from fraudstream.model import Bundle

    path = serving_bundle(settings.models_dir) if model == "current" else Path(model)
    bundle = Bundle.load(path)
    if bundle.mode != mode:
        raise RuleError(
            f"the bundle {bundle.version} scores mode {bundle.mode!r}, the rules are for "
            f"{mode!r}: pass --mode {bundle.mode} or another --model"
        )
    err_console.print(f"scores and decisions of bundle {bundle.version}", highlight=False)
    return bundle


def _scored(
    tx: TxBatch,
    names: tuple[str, ...],
    x: npt.NDArray[np.float32],
    score: npt.NDArray[np.float64],
    decision: npt.NDArray[np.int8],
) -> ScoredBatch:
    n = len(tx)
    return ScoredBatch(
        tx=tx,
        feature_names=names,
        features=x,
        score=score,
        decision=decision,
        reasons=[],
        model_version="",
        partition=np.zeros(n, np.int32),
        offset=np.zeros(n, np.int64),
        processed_at_ms=0,
    )


def _verdicts(history: TxBatch, book: LabelBook | None) -> npt.NDArray[np.int8]:
    """The latest verdict on each row from the labels file's book (-1: none)."""
    out = np.full(len(history), -1, np.int8)
    if book is None:
        return out
    for i, tx in enumerate(history.tx_id):
        intervals = book.intervals_of(tx)
        if intervals:
            out[i] = max(intervals)[2]
    return out
