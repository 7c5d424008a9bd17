"""Transaction files (CSV, Parquet), read the same way by every command that reads one.

``replay`` and ``train DATA`` call :func:`read_transactions`; it returns a file's rows in
event-time order, with canonical column names and types, for PaySim (Kaggle's columns and ours)
or the card format (the Fraud Detection Handbook's).

- **Columns**: matched case-insensitively, a UTF-8 byte-order mark and surrounding spaces ignored.
  Other names are mapped with ``columns`` (target field -> the file's column; the settings'
  ``FRAUDSTREAM_REPLAY__COLUMNS__<FIELD>=<column>``). A missing required column is an error
  naming it.
- **Types**: CSV cells are read as text and each known column is parsed to its own type, so a
  column of integer-looking amounts followed by ``987591.59`` stays a float column; nothing is
  inferred from the first rows.
- **Missing values**: an empty cell, ``NA``, ``N/A``, ``NaN``, ``null`` or ``None`` (any case).
- **Bad rows are skipped and counted**: a row whose required field is missing, or whose field
  does not parse (a word in ``amount``, an unknown ``type``, ``isFraud`` other than 0/1), is left
  out; a warning gives the count and, per column, examples with their line (CSV, the header is
  line 1) or row (Parquet, from 1) and what was expected. A file with no usable row is an error.
- **Time**: a file's own timestamps (``eventTimeMs``, ``TX_DATETIME``) are kept. PaySim's
  ``step`` (hours since the start) and ``TX_TIME_SECONDS`` are relative: event time is
  ``start_ms`` + the step's hour, the step's rows spread evenly over that hour in file order (a
  step's rows are not one burst), or ``start_ms`` + the seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema._canonical import KINDS

__all__ = [
    "HOUR_MS",
    "NULL_TOKENS",
    "FileFormat",
    "Start",
    "TransactionFile",
    "read_transactions",
    "start_before",
]

log = logging.getLogger(__name__)

FileFormat = Literal["paysim", "card"]
#: ``start_ms``: ms of step 0 / second 0, or a function of the relative times' span (ms) giving it.
Start = int | Callable[[int], int]
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
#: Cell values read as missing (compared after stripping spaces, in any case).
NULL_TOKENS: Final = ("", "na", "n/a", "nan", "null", "none")
_MAX_NAME: Final = 64
_EXAMPLES: Final = 3
_ROW: Final = "__row"

Kind = Literal["step", "amount", "bit", "time_ms", "seconds", "kind", "name", "id", "text", "when"]
_EXPECTED: Final[dict[Kind, str]] = {
    "step": "a whole number of hours >= 0",
    "amount": "a number >= 0",
    "bit": "0 or 1",
    "time_ms": "milliseconds since 1970-01-01 (a whole number >= 0)",
    "seconds": "seconds since the start (a number >= 0)",
    "kind": f"one of {', '.join(KINDS)}",
    "name": f"a name of 1 to {_MAX_NAME} characters",
    "id": "an id",
    "text": "text",
    "when": "a date and time in the format of the column's first value, e.g. 2018-04-01 00:00:31",
}
_FIELDS: Final[dict[FileFormat, dict[str, Kind]]] = {
    "paysim": {
        "step": "step",
        "type": "kind",
        "amount": "amount",
        "nameOrig": "name",
        "oldbalanceOrg": "amount",
        "newbalanceOrig": "amount",
        "nameDest": "name",
        "oldbalanceDest": "amount",
        "newbalanceDest": "amount",
        "isFraud": "bit",
        "isFlaggedFraud": "bit",
        "eventTimeMs": "time_ms",
        "fraudScenario": "text",
        "txId": "name",
    },
    "card": {
        "TRANSACTION_ID": "id",
        "TX_DATETIME": "when",
        "CUSTOMER_ID": "id",
        "TERMINAL_ID": "id",
        "TX_AMOUNT": "amount",
        "TX_TIME_SECONDS": "seconds",
        "TX_FRAUD": "bit",
        "TX_FRAUD_SCENARIO": "text",
    },
}
#: Required columns; a tuple of alternatives where one is enough (the first present is the time).
_REQUIRED: Final[dict[FileFormat, tuple[tuple[str, ...], ...]]] = {
    "paysim": (("step", "eventTimeMs"), ("type",), ("amount",), ("nameOrig",), ("nameDest",)),
    "card": (
        ("TX_DATETIME", "TX_TIME_SECONDS"),
        ("CUSTOMER_ID",),
        ("TERMINAL_ID",),
        ("TX_AMOUNT",),
    ),
}
_LABEL: Final[dict[FileFormat, str]] = {"paysim": "isFraud", "card": "TX_FRAUD"}
_TARGETS: Final = {name.lower(): name for fields in _FIELDS.values() for name in fields}


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
    start_ms: Start = 0,
    require_label: bool = False,
) -> TransactionFile:
    """Read a CSV or Parquet transaction file (see the module's notes).

    ``fmt`` None detects the format from the columns. ``require_label``: the label column
    (``isFraud`` / ``TX_FRAUD``) is required too, and a row without a label is skipped.
    """
    raw, where = _read_raw(Path(path))
    sources = _resolve(raw.columns, columns or {})
    fmt = _choose_format(Path(path).name, raw.columns, sources, fmt, require_label)
    required = {g[0] if g[0] in sources else g[1] for g in _REQUIRED[fmt] if set(g) & set(sources)}
    if require_label:
        required.add(_LABEL[fmt])
    fields = {name: kind for name, kind in _FIELDS[fmt].items() if name in sources}
    raw = raw.select(pl.col(sources[n]).alias(n) for n in fields).with_row_index(_ROW, offset=1)
    raw = raw.filter(~pl.all_horizontal(pl.col(list(fields)).is_null()))  # blank lines
    typed, problems = _validate(raw, fields, required, sources, where)
    if typed.height == 0:
        detail = "; ".join(problems) if problems else "the file has no data rows"
        raise SchemaError(f"{Path(path).name}: no usable transaction ({detail})")
    if problems:
        log.warning(
            "%s: skipped %s of %s rows with a missing or invalid value: %s",
            Path(path).name,
            f"{raw.height - typed.height:,}",
            f"{raw.height:,}",
            "; ".join(problems),
        )
    frame, relative = _with_event_time(typed, fmt, start_ms)
    frame = frame.sort(["__event_ms", _ROW])
    return TransactionFile(
        path=Path(path),
        format=fmt,
        frame=frame.drop("__event_ms", _ROW),
        event_time_ms=frame["__event_ms"].to_numpy().astype(np.int64),
        rows=frame[_ROW].to_numpy().astype(np.int64),
        rows_read=raw.height,
        problems=tuple(problems),
        relative_time=relative,
    )


def _read_raw(path: Path) -> tuple[pl.DataFrame, str]:
    """The file's cells (CSV: all as text) and what its rows are called in messages."""
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path), "row"
        if suffix in (".csv", ".gz"):
            return pl.read_csv(path, infer_schema=False), "line"
    except pl.exceptions.PolarsError as exc:
        kind = "Parquet" if suffix == ".parquet" else "CSV (UTF-8, comma-separated)"
        raise SchemaError(f"cannot read {path.name} as {kind}: {exc}") from exc
    raise ConfigError(f"cannot read {path.name}: expected a .csv or .parquet file")


def _key(name: str) -> str:
    return name.lstrip("\ufeff").strip().lower()


def _resolve(file_columns: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Canonical field -> the file's column: the user's mapping, then names matched loosely."""
    by_key: dict[str, str] = {}
    for col in file_columns:  # an exact canonical spelling wins over another case of it
        if _key(col) not in by_key or col in _TARGETS.values():
            by_key[_key(col)] = col
    sources: dict[str, str] = {}
    for target, source in mapping.items():
        canonical = _TARGETS.get(_key(target))
        if canonical is None:
            raise ConfigError(
                f"column mapping: unknown target field {target!r}; "
                f"choose from {', '.join(sorted(_TARGETS.values()))}"
            )
        if _key(source) not in by_key:
            raise SchemaError(
                f"column mapping: {source!r} (for {canonical}) not in file; "
                f"its columns are {', '.join(file_columns)}"
            )
        sources[canonical] = by_key[_key(source)]
    used = set(sources.values())
    for key, col in by_key.items():
        canonical = _TARGETS.get(key)
        if canonical is not None and canonical not in sources and col not in used:
            sources[canonical] = col
    return sources


def _missing(fmt: FileFormat, sources: Mapping[str, str], require_label: bool) -> list[str]:
    groups = list(_REQUIRED[fmt]) + ([(_LABEL[fmt],)] if require_label else [])
    return [" or ".join(g) for g in groups if not set(g) & set(sources)]


def _choose_format(
    name: str,
    file_columns: Sequence[str],
    sources: Mapping[str, str],
    fmt: FileFormat | None,
    require_label: bool,
) -> FileFormat:
    candidates: tuple[FileFormat, ...] = ("paysim", "card") if fmt is None else (fmt,)
    missing = {f: _missing(f, sources, require_label) for f in candidates}
    for f in candidates:
        if not missing[f]:
            return f
    closest = min(candidates, key=lambda f: len(missing[f]))
    needed = ", ".join(" or ".join(g) for g in _REQUIRED[closest])
    label = f", {_LABEL[closest]}" if require_label else ""
    hint = ""
    if fmt is not None:
        other: FileFormat = "card" if fmt == "paysim" else "paysim"
        if not _missing(other, sources, require_label):
            hint = f" It looks like the {other} format (train --format {other})."
    first = missing[closest][0].split(" or ")[0].upper()
    raise SchemaError(
        f"{name} has no column for {', '.join(missing[closest])}: the {closest} format needs "
        f"{needed}{label}; the file's columns are {', '.join(file_columns)}. Name them so "
        f"(any case) or map yours, e.g. FRAUDSTREAM_REPLAY__COLUMNS__{first}=<your column>.{hint}"
    )


def _cells(name: str) -> pl.Expr:
    """The column as stripped text, null where empty or a :data:`NULL_TOKENS` value."""
    text = pl.col(name).cast(pl.Utf8).str.strip_chars()
    return pl.when(text.str.to_lowercase().is_in(NULL_TOKENS)).then(None).otherwise(text)


def _number(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric() or dtype == pl.Boolean:
        return pl.col(name).cast(pl.Float64).fill_nan(None)
    return _cells(name).cast(pl.Float64, strict=False)


def _parse(name: str, kind: Kind, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """``(value, present)``: the typed value (null if missing or invalid); whether a value is
    there at all (then a null value means invalid)."""
    if kind in ("step", "amount", "bit", "time_ms", "seconds"):
        num = _number(name, dtype)
        ok = num.is_finite() & (num >= 0)
        if kind != "amount" and kind != "seconds":
            ok = ok & (num == num.floor()) & ((num <= 1) if kind == "bit" else pl.lit(True))
        value: pl.Expr = pl.when(ok).then(num)
        if kind in ("step", "time_ms"):
            value = value.cast(pl.Int64)
        elif kind == "bit":
            value = value.cast(pl.Int8)
        present = pl.col(name).is_not_null() & (
            _cells(name).is_not_null() if dtype == pl.Utf8 else num.is_not_null()
        )
        return value, present
    if kind == "when" and dtype in (pl.Datetime, pl.Date):
        native = pl.col(name) if dtype == pl.Datetime else pl.col(name).cast(pl.Datetime("ms"))
        return native, pl.col(name).is_not_null()
    if kind in ("id", "text") and dtype != pl.Utf8:  # e.g. the handbook's integer ids
        return pl.col(name), pl.col(name).is_not_null()
    text = _cells(name)
    if kind == "kind":
        upper = text.str.to_uppercase()
        return pl.when(upper.is_in(KINDS)).then(upper), text.is_not_null()
    if kind == "name":
        return pl.when(text.str.len_chars() <= _MAX_NAME).then(text), text.is_not_null()
    if kind == "when":
        return text.str.to_datetime(strict=False), text.is_not_null()
    return text, text.is_not_null()


def _validate(
    raw: pl.DataFrame,
    fields: Mapping[str, Kind],
    required: set[str],
    sources: Mapping[str, str],
    where: str,
) -> tuple[pl.DataFrame, list[str]]:
    """Typed columns of the usable rows, and one line per column that made rows unusable."""
    values, flags = [], []
    for name, kind in fields.items():
        value, present = _parse(name, kind, raw.schema[name])
        values.append(value.alias(name))
        bad = (present & value.is_null()) | (~present if name in required else pl.lit(False))
        flags.append(bad.alias(f"__bad_{name}"))
    checked = raw.select(pl.col(_ROW), *values, *flags)
    flag_names = [f"__bad_{n}" for n in fields]
    counts = checked.select(pl.col(flag_names).sum()).row(0)
    problems = [
        _problem(raw, checked, name, sources[name], fields[name], int(n), where)
        for name, n in zip(fields, counts, strict=True)
        if n
    ]
    usable = checked.filter(~pl.any_horizontal(flag_names)) if problems else checked
    return usable.drop(flag_names), problems


def _problem(
    raw: pl.DataFrame,
    checked: pl.DataFrame,
    name: str,
    source: str,
    kind: Kind,
    count: int,
    where: str,
) -> str:
    bad = checked.filter(pl.col(f"__bad_{name}")).head(_EXAMPLES)
    rows = bad[_ROW].to_list()
    cells = raw.join(bad.select(_ROW), on=_ROW)[name].cast(pl.Utf8).to_list()
    shown = ", ".join(
        f"{where} {r + 1 if where == 'line' else r} {(cell or '')!r}"
        for r, cell in zip(rows, cells, strict=True)
    )
    column = name if source == name else f"{name} (column {source!r})"
    more = ", ..." if count > len(rows) else ""
    plural = "row" if count == 1 else "rows"
    return f"{column}: {count:,} {plural} ({shown}{more}); expected {_EXPECTED[kind]}"


def _with_event_time(
    typed: pl.DataFrame, fmt: FileFormat, start_ms: Start
) -> tuple[pl.DataFrame, bool]:
    """``typed`` with ``__event_ms``; whether some times are relative to ``start_ms``."""
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


def _start(start_ms: Start, span_ms: int | None) -> int:
    return start_ms if isinstance(start_ms, int) else start_ms(span_ms or 0)
