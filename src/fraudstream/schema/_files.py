"""Transaction files (CSV, Parquet), read the same way by every command that reads one.

``replay`` and ``train DATA`` call :func:`read_transactions`; it returns a file's rows in
event-time order, with canonical column names and types, for PaySim (Kaggle's columns and ours)
or the card format (the Fraud Detection Handbook's).

- **Columns**: a schema declaration (``schema._declare``) says which column plays which role
  and which are extra fields; ``columns`` (target field -> the file's column, the settings'
  ``FRAUDSTREAM_REPLAY__COLUMNS__<FIELD>=<column>``) adds to it. Undeclared columns named like a
  supported layout's are matched case-insensitively, a UTF-8 byte-order mark and surrounding
  spaces ignored. A missing required column is an error naming it.
- **Extra fields** are returned as extra columns of the frame, under the file's name, typed by
  their kind (categorical: text, numeric/latitude/longitude: float, boolean).
- **Types**: CSV cells are read as text and each known column is parsed to its own type, so a
  column of integer-looking amounts followed by ``987591.59`` stays a float column; nothing is
  inferred from the first rows.
- **Missing values**: an empty cell, ``NA``, ``N/A``, ``NaN``, ``null`` or ``None`` (any case).
- **Bad rows are skipped and counted**: a row whose required field is missing, or whose field
  does not parse (a word in ``amount``, an unknown ``type``, ``isFraud`` other than 0/1), is left
  out; a warning gives the count and, per column, examples with their line (CSV, the header is
  line 1) or row (Parquet, from 1) and what was expected. A file with no usable row is an error.
- **Time**: a file's own timestamps (``eventTimeMs``, ``TX_DATETIME``, or a column declared
  in unit ``ms``, ``s`` or ``iso``) are kept. PaySim's ``step`` (hours since the start,
  ``step_hours``) and ``TX_TIME_SECONDS`` (``s_from_start``) are relative: event time is
  ``start_ms`` + the step's hour, the step's rows spread evenly over that hour in file order (a
  step's rows are not one burst), or ``start_ms`` + the seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema._cells import EXPECTED, NULL_TOKENS, Cells, parse
from fraudstream.schema._declare import SchemaDeclaration, declare, mapping_fields
from fraudstream.schema._resolve import ColumnPlan, key, plan_columns
from fraudstream.schema._roles import ExtraKind, FileFormat

__all__ = [
    "HOUR_MS",
    "NULL_TOKENS",
    "FileFormat",
    "Start",
    "TransactionFile",
    "read_header",
    "read_transactions",
    "start_before",
]

log = logging.getLogger(__name__)

#: ``start_ms``: ms of step 0 / second 0, or a function of the relative times' span (ms) giving it.
Start = int | Callable[[int], int]
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
_EXAMPLES: Final = 3
_ROW: Final = "__row"
_key = key  # label files match their headers alike (schema._label_files)


@dataclass(frozen=True)
class TransactionFile:
    """A file's usable rows in event-time order (file order among equal times).

    ``frame`` has the format's canonical column names (those the file has) and types; a card
    frame always has ``TX_DATETIME``. ``rows`` is each row's 1-based data row in the file.
    """

    path: Path
    format: FileFormat
    frame: pl.DataFrame
    event_time_ms: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    rows_read: int
    problems: tuple[str, ...]
    #: Whether some event times were derived from ``start_ms`` (``step``, ``TX_TIME_SECONDS``).
    relative_time: bool
    #: The declared extra fields (columns of ``frame``) and their kinds.
    extras: dict[str, ExtraKind] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.frame.height

    @property
    def skipped(self) -> int:
        """Rows left out for a missing or invalid value (see :attr:`problems`)."""
        return self.rows_read - self.frame.height


def start_before(now_ms: int) -> Callable[[int], int]:
    """A start at midnight UTC whole days before ``now_ms``'s day, so a relative file ends before
    that day begins: event time never runs ahead of the clock, and the hour of day of step ``s``
    is ``s % 24`` as when the file is read with ``start_ms=0``."""
    today = now_ms - now_ms % DAY_MS
    return lambda span_ms: today - (span_ms // DAY_MS + 1) * DAY_MS


def read_transactions(
    path: Path,
    fmt: FileFormat | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    schema: SchemaDeclaration | None = None,
    start_ms: Start = 0,
    require_label: bool = False,
) -> TransactionFile:
    """Read a CSV or Parquet transaction file (see the module's notes).

    ``fmt`` None takes the format from ``schema``, else detects it from the columns.
    ``columns`` (target field -> the file's column) is added on top of ``schema``.
    ``require_label``: the label column (``isFraud`` / ``TX_FRAUD``) is required too, and a row
    without a label is skipped.
    """
    raw, where = _read_raw(Path(path))
    name = Path(path).name
    schema = schema if schema is not None else declare({})
    if columns:
        schema = schema.with_fields(mapping_fields(columns, "column mapping"), "column mapping")
    plan = plan_columns(
        raw.columns, schema, fmt, require_label=require_label, name=name, origin=schema.origin
    )
    fields = plan.cells
    raw = raw.select(pl.col(plan.sources[n]).alias(n) for n in fields).with_row_index(
        _ROW, offset=1
    )
    raw = raw.filter(~pl.all_horizontal(pl.col(list(fields)).is_null()))  # blank lines
    typed, problems = _validate(raw, plan, where)
    if typed.height == 0:
        detail = "; ".join(problems) if problems else "the file has no data rows"
        raise SchemaError(f"{name}: no usable transaction ({detail})")
    if problems:
        log.warning(
            "%s: skipped %s of %s rows with a missing or invalid value: %s",
            name,
            f"{raw.height - typed.height:,}",
            f"{raw.height:,}",
            "; ".join(problems),
        )
    frame, relative = _with_event_time(typed, plan.format, start_ms)
    frame = frame.sort(["__event_ms", _ROW])
    return TransactionFile(
        path=Path(path),
        format=plan.format,
        frame=frame.drop("__event_ms", _ROW),
        event_time_ms=frame["__event_ms"].to_numpy().astype(np.int64),
        rows=frame[_ROW].to_numpy().astype(np.int64),
        rows_read=raw.height,
        problems=tuple(problems),
        relative_time=relative,
        extras=dict(plan.extras),
    )


def read_header(path: Path, rows: int) -> pl.DataFrame:
    """The first ``rows`` rows of a CSV (cells as text) or Parquet file, for inspection."""
    return _read_raw(Path(path), rows)[0]


def _read_raw(path: Path, rows: int | None = None) -> tuple[pl.DataFrame, str]:
    """The file's cells (CSV: all as text; the first ``rows`` if given) and what its rows are
    called in messages."""
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path, n_rows=rows), "row"
        if suffix in (".csv", ".gz"):
            return pl.read_csv(path, infer_schema=False, n_rows=rows), "line"
    except pl.exceptions.PolarsError as exc:
        kind = "Parquet" if suffix == ".parquet" else "CSV (UTF-8, comma-separated)"
        raise SchemaError(f"cannot read {path.name} as {kind}: {exc}") from exc
    raise ConfigError(f"cannot read {path.name}: expected a .csv or .parquet file")


def _validate(raw: pl.DataFrame, plan: ColumnPlan, where: str) -> tuple[pl.DataFrame, list[str]]:
    """Typed columns of the usable rows, and one line per column that made rows unusable."""
    values, flags = [], []
    for name, cells in plan.cells.items():
        value, present = parse(name, cells, raw.schema[name])
        values.append(value.alias(name))
        bad = (present & value.is_null()) | (~present if name in plan.required else pl.lit(False))
        flags.append(bad.alias(f"__bad_{name}"))
    checked = raw.select(pl.col(_ROW), *values, *flags)
    flag_names = [f"__bad_{n}" for n in plan.cells]
    counts = checked.select(pl.col(flag_names).sum()).row(0)
    problems = [
        _problem(raw, checked, name, _label(plan, name), plan.cells[name], int(n), where)
        for name, n in zip(plan.cells, counts, strict=True)
        if n
    ]
    usable = checked.filter(~pl.any_horizontal(flag_names)) if problems else checked
    return usable.drop(flag_names), problems


def _label(plan: ColumnPlan, name: str) -> str:
    """How messages name a frame column: by the declared field, else by its (file) name."""
    source = plan.sources[name]
    if name in plan.declared or name in plan.extras:
        return f"field {source!r} ({plan.roles[name]})"
    return name if source == name else f"{name} (column {source!r})"


def _problem(
    raw: pl.DataFrame,
    checked: pl.DataFrame,
    name: str,
    label: str,
    cells: Cells,
    count: int,
    where: str,
) -> str:
    bad = checked.filter(pl.col(f"__bad_{name}")).head(_EXAMPLES)
    rows = bad[_ROW].to_list()
    values = raw.join(bad.select(_ROW), on=_ROW)[name].cast(pl.Utf8).to_list()
    shown = ", ".join(
        f"{where} {r + 1 if where == 'line' else r} {(cell or '')!r}"
        for r, cell in zip(rows, values, strict=True)
    )
    more = ", ..." if count > len(rows) else ""
    plural = "row" if count == 1 else "rows"
    return f"{label}: {count:,} {plural} ({shown}{more}); expected {EXPECTED[cells]}"


def _with_event_time(
    typed: pl.DataFrame, fmt: FileFormat, start_ms: Start
) -> tuple[pl.DataFrame, bool]:
    """``typed`` with ``__event_ms``; whether some times are relative to ``start_ms``."""
    typed = _in_own_units(typed)
    if fmt == "card":
        if "TX_DATETIME" in typed.columns:
            return typed.with_columns(
                pl.col("TX_DATETIME").dt.epoch("ms").alias("__event_ms")
            ), False
        offset = (pl.col("TX_TIME_SECONDS") * 1000).round().cast(pl.Int64)
        start = _start(start_ms, typed.select(offset.max()).item())
        event = (pl.lit(start) + offset).alias("__event_ms")
        frame = typed.with_columns(event)
        return frame.with_columns(pl.from_epoch("__event_ms", "ms").alias("TX_DATETIME")), True
    if "step" not in typed.columns:  # timestamps only: step = hours since the first
        first = pl.col("eventTimeMs").min()
        typed = typed.with_columns(((pl.col("eventTimeMs") - first) // HOUR_MS).alias("step"))
    within = pl.int_range(pl.len()).over("step") * HOUR_MS // pl.len().over("step")
    offset = pl.col("step") * HOUR_MS + within
    relative = "eventTimeMs" not in typed.columns or typed["eventTimeMs"].null_count() > 0
    own = pl.col("eventTimeMs") if "eventTimeMs" in typed.columns else pl.lit(None, pl.Int64)
    if not relative:
        return typed.with_columns(own.alias("__event_ms")), False
    start = _start(start_ms, typed.select(offset.filter(own.is_null()).max()).item())
    return typed.with_columns(own.fill_null(pl.lit(start) + offset).alias("__event_ms")), True


def _in_own_units(typed: pl.DataFrame) -> pl.DataFrame:
    """Times declared in another unit in the format's own: ``TX_DATETIME`` a naive UTC
    datetime, ``eventTimeMs`` integer milliseconds."""
    schema = typed.schema
    if "TX_DATETIME" in schema and schema["TX_DATETIME"].is_integer():
        typed = typed.with_columns(pl.from_epoch("TX_DATETIME", "ms"))
    elif "TX_DATETIME" in schema and getattr(schema["TX_DATETIME"], "time_zone", None):
        utc = pl.col("TX_DATETIME").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        typed = typed.with_columns(utc)
    if "eventTimeMs" in schema and schema["eventTimeMs"].is_temporal():
        typed = typed.with_columns(pl.col("eventTimeMs").dt.epoch("ms"))
    return typed


def _start(start_ms: Start, span_ms: int | None) -> int:
    return start_ms if isinstance(start_ms, int) else start_ms(span_ms or 0)
