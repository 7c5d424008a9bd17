"""``fraudstream schema infer``: a declaration proposed from a file's header and first rows.

Roles come from common column names (the public credit-card dataset's, PaySim's Kaggle columns,
the handbook's, ours); the event time's unit from its values (a date, or numbers the size of
milliseconds or seconds since 1970, or PaySim's step); the other columns become extra fields by
their values (latitude/longitude pairs by name, booleans, numbers, text of few distinct values).
What fits nothing is listed, never guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from fraudstream.schema._canonical import KINDS
from fraudstream.schema._cells import text_cells
from fraudstream.schema._declare import FieldSpec, SchemaDeclaration, declare
from fraudstream.schema._roles import Role, TimeUnit

__all__ = ["Proposal", "infer_schema"]

#: Column names (lower case, spaces and dashes as ``_``) per role, the preferred first.
_NAMES: Final[dict[Role, tuple[str, ...]]] = {
    "tx_id": ("txid", "tx_id", "transaction_id", "trans_num", "trans_id", "transactionid"),
    "event_time": (
        "eventtimems",
        "event_time_ms",
        "unix_time",
        "timestamp",
        "ts",
        "event_time",
        "tx_datetime",
        "trans_date_trans_time",
        "datetime",
        "transaction_time",
        "time",
        "step",
        "tx_time_seconds",
    ),
    "account": (
        "nameorig",
        "customerid",
        "customer_id",
        "cc_num",
        "card_number",
        "card_id",
        "account_id",
        "account",
        "client_id",
        "user_id",
        "customer",
        "card",
    ),
    "counterparty": (
        "namedest",
        "terminalid",
        "terminal_id",
        "merchant",
        "merchant_id",
        "merchant_name",
        "terminal",
        "payee",
        "counterparty",
    ),
    "amount": ("amount", "tx_amount", "amt", "transaction_amount", "value"),
    "type": ("type", "transaction_type", "tx_type"),
    "old_balance_orig": ("oldbalanceorg", "oldbalanceorig"),
    "new_balance_orig": ("newbalanceorig",),
    "old_balance_dest": ("oldbalancedest",),
    "new_balance_dest": ("newbalancedest",),
    "label": ("isfraud", "is_fraud", "tx_fraud", "fraud", "label", "is_fraudulent", "class"),
    "flagged": ("isflaggedfraud",),
    "scenario": ("fraudscenario", "tx_fraud_scenario"),
}
_PAYSIM_ROLES: Final = frozenset(
    {"type", "old_balance_orig", "new_balance_orig", "old_balance_dest", "new_balance_dest"}
)
_NUMERIC_ROLES: Final = _PAYSIM_ROLES - {"type"} | {"amount"}
_LAT: Final = re.compile(r"^(?P<pair>.*?)_?(lat|latitude)$")
_LONG: Final = re.compile(r"^(?P<pair>.*?)_?(long|lng|lon|longitude)$")
_TIMEISH: Final = re.compile(r"time|date|day|step|hour")
_CODEISH: Final = re.compile(r"(^|_)(id|code|zip|postcode|mcc)$")
_BOOLEAN: Final = frozenset({"0", "1", "true", "false", "t", "f", "yes", "no", "y", "n"})
_MS_FLOOR: Final = 1e11  # 1973-03-03 in ms; in seconds, the year 5138
_S_FLOOR: Final = 1e8  # 1973-03-03 in seconds
_FEW: Final = 100  # most distinct values of a categorical text column in a sample
_SHARE: Final = 0.99  # share of a column's values that must fit a reading


@dataclass(frozen=True)
class Proposal:
    """A proposed declaration, why each field was placed so, and the columns left out."""

    schema: SchemaDeclaration
    notes: dict[str, str] = field(default_factory=dict)
    unplaced: dict[str, str] = field(default_factory=dict)
    rows: int = 0

    def to_toml(self, source: str) -> str:
        """The declaration as TOML, with the notes and the columns left out as comments."""
        lines = [
            f"# proposed by `fraudstream schema infer {source}` from its first {self.rows:,} rows;",
            f"# check it with `fraudstream schema check {source} --schema THIS_FILE`",
        ]
        if self.schema.format is not None:
            lines.append(f'format = "{self.schema.format}"')
        lines += ["", "[fields]"]
        for name, spec in self.schema.fields.items():
            note = self.notes.get(name)
            lines.append(f"{_key(name)} = {_value(spec)}" + (f"  # {note}" if note else ""))
        if self.unplaced:
            lines += ["", "# not placed (declare them if they matter):"]
            lines += [f"# {_key(name)}: {why}" for name, why in self.unplaced.items()]
        return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(spec: FieldSpec) -> str:
    pairs = {"role": spec.role, "unit": spec.unit, "kind": spec.kind, "pair": spec.pair}
    given = {k: v for k, v in pairs.items() if v is not None}
    if list(given) in (["role"], ["kind"]) and spec.kind not in ("latitude", "longitude"):
        return json.dumps(next(iter(given.values())))
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in given.items()) + " }"


def _norm(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.lstrip("\ufeff").strip().lower())


def infer_schema(sample: pl.DataFrame) -> Proposal:
    """Propose a declaration for a file whose first rows are ``sample`` (CSV cells as text)."""
    fields: dict[str, FieldSpec] = {}
    notes: dict[str, str] = {}
    unplaced: dict[str, str] = {}
    roles = _roles_by_name(sample, fields, notes, unplaced)
    for col in sample.columns:
        if col not in fields and col not in unplaced:
            _place_extra(sample, col, fields, notes, unplaced)
    _pair_locations(fields, notes, unplaced)
    steps = any(spec.unit == "step_hours" for spec in fields.values())
    fmt = "paysim" if steps or roles & _PAYSIM_ROLES else "card"
    schema = declare({"format": fmt, "fields": fields}, "the proposal")
    return Proposal(schema, notes, unplaced, sample.height)


def _roles_by_name(
    sample: pl.DataFrame,
    fields: dict[str, FieldSpec],
    notes: dict[str, str],
    unplaced: dict[str, str],
) -> set[str]:
    """Place the columns named like a role (the preferred name of a role wins)."""
    by_name = {_norm(c): c for c in reversed(sample.columns)}
    found: set[str] = set()
    for role, names in _NAMES.items():
        for name in names:
            col = by_name.get(name)
            if col is None or col in fields or col in unplaced:
                continue
            spec, why = _as_role(sample, col, role)
            if spec is None:
                if role == "event_time":  # named a time, read as none: say why
                    unplaced[col] = why
                continue
            if role in found:
                first = next(c for c, s in fields.items() if s.alias and s.alias.role == role)
                unplaced[col] = f"also looks like the {role} ({why}); {first} is declared"
                continue
            fields[col], notes[col] = spec, why
            found.add(role)
    timeish = [c for c in sample.columns if _TIMEISH.search(_norm(c))]
    for col in timeish if "event_time" in found else ():
        if col not in fields and col not in unplaced:
            unplaced[col] = "another time column; the event time is declared above"
    return found


def _as_role(sample: pl.DataFrame, col: str, role: Role) -> tuple[FieldSpec | None, str]:
    """The column in ``role`` if its values fit, with a note; else None and why not."""
    values = _texts(sample, col)
    if role == "event_time":
        unit, why = _time_unit(sample, col, values)
        if unit is None:
            return None, why
        return FieldSpec(role="event_time", unit=unit), why
    if role in _NUMERIC_ROLES and _numbers(values).null_count() > (1 - _SHARE) * len(values):
        return None, "not numbers"
    if role == "type" and not set(values.str.to_uppercase().unique()) <= set(KINDS):
        return None, f"values other than {', '.join(KINDS)}"
    if role in ("label", "flagged") and not set(values.str.to_lowercase().unique()) <= _BOOLEAN:
        return None, "values other than 0/1"
    return FieldSpec(role=role), f"{values.n_unique():,} distinct values"


def _texts(sample: pl.DataFrame, col: str) -> pl.Series:
    return sample.select(text_cells(col).alias(col)).get_column(col).drop_nulls()


def _numbers(values: pl.Series) -> pl.Series:
    return values.cast(pl.Float64, strict=False)


def _time_unit(sample: pl.DataFrame, col: str, values: pl.Series) -> tuple[TimeUnit | None, str]:
    """The event time's unit from the values (and PaySim's step and the handbook's seconds by
    name), with the span it gives."""
    if sample.schema[col].is_temporal():
        return "iso", "dates"
    if values.is_empty():
        return None, "empty in the sample"
    numbers = _numbers(values)
    if numbers.null_count() > (1 - _SHARE) * len(values):
        dates = values.str.to_datetime(strict=False)
        if dates.null_count() > (1 - _SHARE) * len(values):
            return None, "neither numbers nor dates"
        return "iso", f"dates {dates.min()!s} .. {dates.max()!s}"
    low, high = float(numbers.min()), float(numbers.max())  # type: ignore[arg-type]
    name = _norm(col)
    if name == "step":
        return "step_hours", f"hours since the start, {low:,.0f} .. {high:,.0f}"
    if name == "tx_time_seconds":
        return "s_from_start", f"seconds since the start, {low:,.0f} .. {high:,.0f}"
    if low >= _MS_FLOOR:
        return "ms", f"milliseconds since 1970: {_date(low / 1000)} .. {_date(high / 1000)}"
    if low >= _S_FLOOR:
        return "s", f"seconds since 1970: {_date(low)} .. {_date(high)}"
    return None, f"numbers {low:,.0f} .. {high:,.0f}: too small for a date, declare the unit"


def _in_range(values: pl.Series, limit: float) -> bool:
    numbers = _numbers(values)
    return numbers.null_count() == 0 and bool((numbers.abs() <= limit).all())


def _date(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _place_extra(
    sample: pl.DataFrame,
    col: str,
    fields: dict[str, FieldSpec],
    notes: dict[str, str],
    unplaced: dict[str, str],
) -> None:
    """An unnamed column as an extra field by its values, or why not."""
    values = _texts(sample, col)
    distinct = values.n_unique()
    name = _norm(col)
    if values.is_empty():
        unplaced[col] = "empty in the sample"
    elif name in ("", "unnamed:_0", "index"):
        unplaced[col] = "a row number"
    elif (_LAT.match(name) or _LONG.match(name)) and _in_range(
        values, 90 if _LAT.match(name) else 180
    ):
        kind = "latitude" if _LAT.match(name) else "longitude"
        fields[col], notes[col] = FieldSpec(kind=kind, pair="?"), f"{kind}, paired below"
    elif set(values.str.to_lowercase().unique()) <= _BOOLEAN:
        fields[col], notes[col] = FieldSpec(kind="boolean"), f"values {sorted(set(values))}"
    elif _numbers(values).null_count() <= (1 - _SHARE) * len(values) and not _CODEISH.search(name):
        fields[col], notes[col] = FieldSpec(kind="numeric"), "numbers"
    elif distinct <= _FEW and distinct <= len(values) // 2:
        fields[col], notes[col] = FieldSpec(kind="categorical"), f"{distinct:,} distinct values"
    else:
        unplaced[col] = (
            f"{distinct:,} distinct values in {len(values):,} rows: an id or free text? "
            'declare it as a role, or as "categorical"'
        )


def _pair_locations(
    fields: dict[str, FieldSpec], notes: dict[str, str], unplaced: dict[str, str]
) -> None:
    """Latitude/longitude columns paired by their names' prefix (none: ``location``)."""
    by_pair: dict[str, dict[str, str]] = {}
    for col, spec in fields.items():
        if spec.kind in ("latitude", "longitude"):
            match = (_LAT if spec.kind == "latitude" else _LONG).match(_norm(col))
            pair = (match.group("pair") if match else "") or "location"
            by_pair.setdefault(pair, {})[spec.kind] = col
    for pair, cols in by_pair.items():
        if len(cols) == 2:
            for kind, col in cols.items():
                fields[col] = FieldSpec(kind=kind, pair=pair)
                notes[col] = f"{kind} of {pair}"
            continue
        for col in cols.values():
            del fields[col], notes[col]
            unplaced[col] = "a latitude or longitude without its other half"
