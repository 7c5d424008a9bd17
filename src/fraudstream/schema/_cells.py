"""How a file's cells are parsed, one polars expression per column and kind of value.

Each parser gives ``(value, present)``: the typed value (null if missing or invalid) and whether
a value is there at all (a present cell whose value is null is invalid).
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

from fraudstream.schema._canonical import KINDS
from fraudstream.schema._roles import ExtraKind, TimeUnit

__all__ = ["EXPECTED", "EXTRA_CELLS", "MAX_NAME", "NULL_TOKENS", "UNIT_CELLS", "Cells", "parse"]

Cells = Literal[
    "step",
    "amount",
    "bit",
    "time_ms",
    "epoch_s",
    "seconds",
    "kind",
    "name",
    "id",
    "text",
    "when",
    "category",
    "number",
    "boolean",
    "latitude",
    "longitude",
]
#: Cell values read as missing (compared after stripping spaces, in any case).
NULL_TOKENS: Final = ("", "na", "n/a", "nan", "null", "none")
MAX_NAME: Final = 64
EXPECTED: Final[dict[Cells, str]] = {
    "step": "a whole number of hours >= 0",
    "amount": "a number >= 0",
    "bit": "0 or 1",
    "time_ms": "milliseconds since 1970-01-01 (a whole number >= 0)",
    "epoch_s": "seconds since 1970-01-01 (a number >= 0)",
    "seconds": "seconds since the start (a number >= 0)",
    "kind": f"one of {', '.join(KINDS)}",
    "name": f"a name of 1 to {MAX_NAME} characters",
    "id": "an id",
    "text": "text",
    "when": "a date and time in the format of the column's first value, e.g. 2018-04-01 00:00:31",
    "category": "text",
    "number": "a number",
    "boolean": "true/false, yes/no, t/f, y/n or 1/0",
    "latitude": "a latitude in degrees, -90 to 90",
    "longitude": "a longitude in degrees, -180 to 180",
}
#: How an event time in each unit is parsed.
UNIT_CELLS: Final[dict[TimeUnit, Cells]] = {
    "ms": "time_ms",
    "s": "epoch_s",
    "iso": "when",
    "step_hours": "step",
    "s_from_start": "seconds",
}
#: How each kind of extra field is parsed.
EXTRA_CELLS: Final[dict[ExtraKind, Cells]] = {
    "categorical": "category",
    "numeric": "number",
    "boolean": "boolean",
    "latitude": "latitude",
    "longitude": "longitude",
}
_TRUE: Final = ("true", "t", "yes", "y", "1")
_FALSE: Final = ("false", "f", "no", "n", "0")
_NON_NEGATIVE: Final = ("step", "amount", "bit", "time_ms", "epoch_s", "seconds")
_RANGE: Final = {"latitude": 90.0, "longitude": 180.0}


def text_cells(name: str) -> pl.Expr:
    """The column as stripped text, null where empty or a :data:`NULL_TOKENS` value."""
    text = pl.col(name).cast(pl.Utf8).str.strip_chars()
    return pl.when(text.str.to_lowercase().is_in(NULL_TOKENS)).then(None).otherwise(text)


def _number(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric() or dtype == pl.Boolean:
        return pl.col(name).cast(pl.Float64).fill_nan(None)
    return text_cells(name).cast(pl.Float64, strict=False)


def _present(name: str, dtype: pl.DataType, num: pl.Expr) -> pl.Expr:
    return pl.col(name).is_not_null() & (
        text_cells(name).is_not_null() if dtype == pl.Utf8 else num.is_not_null()
    )


def _numeric(name: str, cells: Cells, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    num = _number(name, dtype)
    ok = num.is_finite()
    if cells in _NON_NEGATIVE:
        ok = ok & (num >= 0)
    if cells in ("step", "bit", "time_ms"):
        ok = ok & (num == num.floor()) & ((num <= 1) if cells == "bit" else pl.lit(True))
    if cells in _RANGE:
        ok = ok & (num.abs() <= _RANGE[cells])
    value: pl.Expr = pl.when(ok).then(num)
    if cells == "epoch_s":
        value = (value * 1000).round().cast(pl.Int64)
    elif cells in ("step", "time_ms"):
        value = value.cast(pl.Int64)
    elif cells == "bit":
        value = value.cast(pl.Int8)
    return value, _present(name, dtype, num)


def _boolean(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    if dtype == pl.Boolean:
        return pl.col(name), pl.col(name).is_not_null()
    text = text_cells(name).str.to_lowercase()
    value = pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False)
    return value, text.is_not_null()


def parse(name: str, cells: Cells, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """``(value, present)`` of column ``name`` read as ``cells`` (see the module's notes)."""
    if cells in ("boolean",):
        return _boolean(name, dtype)
    if cells not in ("kind", "name", "id", "text", "when", "category"):
        return _numeric(name, cells, dtype)
    if cells == "when" and dtype in (pl.Datetime, pl.Date):
        native = pl.col(name) if dtype == pl.Datetime else pl.col(name).cast(pl.Datetime("ms"))
        return native, pl.col(name).is_not_null()
    if cells in ("id", "text") and dtype != pl.Utf8:  # e.g. the handbook's integer ids
        return pl.col(name), pl.col(name).is_not_null()
    text = text_cells(name)
    if cells == "kind":
        upper = text.str.to_uppercase()
        return pl.when(upper.is_in(KINDS)).then(upper), text.is_not_null()
    if cells == "name":
        return pl.when(text.str.len_chars() <= MAX_NAME).then(text), text.is_not_null()
    if cells == "when":
        return text.str.to_datetime(strict=False, time_zone="UTC"), text.is_not_null()
    return text, text.is_not_null()
