"""A declaration resolved against a file's columns: which column becomes which, read how.

Declared fields come first; a column the declaration does not name is still matched by its
name (any case) when it is a field or column of the supported layouts (``nameOrig``,
``TX_AMOUNT``, ``eventTimeMs`` …). The format is the declared one, else the one the roles imply,
else the first whose required columns are all there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fraudstream.errors import SchemaError
from fraudstream.schema._cells import EXTRA_CELLS, UNIT_CELLS, Cells
from fraudstream.schema._declare import SchemaDeclaration
from fraudstream.schema._roles import (
    FORMATS,
    ExtraKind,
    FileFormat,
    Role,
    column_for,
    file_names,
    role_formats,
)

__all__ = ["LABEL", "ColumnPlan", "plan_columns"]

#: Each format's columns and how their cells are read.
_CELLS: Final[dict[FileFormat, dict[str, Cells]]] = {
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
_REQUIRED_ROLES: Final[dict[FileFormat, tuple[Role, ...]]] = {
    "paysim": ("event_time", "type", "amount", "account", "counterparty"),
    "card": ("event_time", "account", "counterparty", "amount"),
}
LABEL: Final[dict[FileFormat, str]] = {"paysim": "isFraud", "card": "TX_FRAUD"}
_TIME_HINT: Final = (
    ' The event time needs a unit: declare it, e.g. your_column = { role = "event_time", '
    'unit = "s" } (units ms, s, iso, step_hours, s_from_start).'
)


@dataclass(frozen=True)
class ColumnPlan:
    """How a file is read: the frame's column -> the file's column and how its cells parse.

    ``extras`` are the declared extra fields (the frame keeps the file's name for them);
    ``roles`` says what each frame column is (``account``, ``event_time (s)``, ``extra numeric``);
    ``declared`` are the frame columns the declaration named (the others matched by name).
    """

    format: FileFormat
    sources: dict[str, str]
    cells: dict[str, Cells]
    required: frozenset[str]
    extras: dict[str, ExtraKind]
    roles: dict[str, str]
    declared: frozenset[str]


def _by_key(file_columns: Sequence[str]) -> dict[str, str]:
    """Loose key -> the file's column (an exact canonical spelling wins over another case)."""
    canonical = {c for cols in _CELLS.values() for c in cols}
    out: dict[str, str] = {}
    for col in file_columns:
        if key(col) not in out or col in canonical:
            out[key(col)] = col
    return out


def key(name: str) -> str:
    """A column's name as matched: a byte-order mark and surrounding spaces dropped, any case."""
    return name.lstrip("\ufeff").strip().lower()


def plan_columns(
    file_columns: Sequence[str],
    schema: SchemaDeclaration,
    fmt: FileFormat | None,
    *,
    require_label: bool,
    name: str,
    origin: str,
) -> ColumnPlan:
    """Resolve ``schema`` against ``file_columns`` (file ``name``; ``origin`` names the
    declaration in messages), or raise :class:`SchemaError` naming what is missing."""
    by_key = _by_key(file_columns)
    absent = [f for f in schema.fields if key(f) not in by_key]
    if absent:
        raise SchemaError(
            "; ".join(
                f"{origin}: field {f!r} ({schema.fields[f].describe()}) not in file {name}"
                for f in absent
            )
            + f"; its columns are {', '.join(file_columns)}"
        )
    fixed = _fixed_format(schema, fmt, name, origin)
    candidates = FORMATS if fixed is None else (fixed,)
    plans = {f: _plan(f, schema, by_key, require_label) for f in candidates}
    missing = {f: _missing(f, plan.sources, require_label) for f, plan in plans.items()}
    for f, plan in plans.items():
        if not missing[f]:
            _check_extras(plan, origin)
            return plan
    closest = min(plans, key=lambda f: len(missing[f]))
    raise SchemaError(_missing_message(name, file_columns, closest, missing[closest], fixed))


def _fixed_format(
    schema: SchemaDeclaration, fmt: FileFormat | None, name: str, origin: str
) -> FileFormat | None:
    implied = schema.implied_format()
    if fmt is None or implied is None or fmt == implied:
        return fmt or implied
    why = next(
        (f"field {f!r} ({s.role})" for f, s in schema.fields.items() if s.formats() == (implied,)),
        f"format = {implied!r}",
    )
    raise SchemaError(f"{origin} declares {name} in the {implied} format ({why}), not {fmt}")


def _plan(
    fmt: FileFormat, schema: SchemaDeclaration, by_key: Mapping[str, str], require_label: bool
) -> ColumnPlan:
    sources: dict[str, str] = {}
    cells: dict[str, Cells] = {}
    roles: dict[str, str] = {}
    for field, spec in schema.fields.items():
        alias = spec.alias
        column = None if alias is None else column_for(fmt, alias.role, spec.time_unit)
        if alias is None or column is None:
            continue
        sources[column] = by_key[key(field)]
        unit = spec.time_unit
        cells[column] = UNIT_CELLS[unit] if unit is not None else _CELLS[fmt][column]
        roles[column] = spec.describe()
    declared = frozenset(roles)
    extras = {by_key[key(f)]: s.kind for f, s in schema.extras().items() if s.kind is not None}
    used = set(sources.values()) | set(extras)
    names = sorted(file_names().items(), key=lambda item: item[1].format is None)  # own first
    for field, alias in names:
        col = by_key.get(key(field))
        column = column_for(fmt, alias.role, alias.unit)
        if col is None or col in used or column is None or column in sources:
            continue
        if fmt in role_formats(alias):
            sources[column] = col
            cells[column] = UNIT_CELLS[alias.unit] if alias.unit else _CELLS[fmt][column]
            roles[column] = alias.role + (f" ({alias.unit})" if alias.unit else "")
            used.add(col)
    for field, spec in schema.extras().items():
        col = by_key[key(field)]
        sources[col], cells[col], roles[col] = col, EXTRA_CELLS[extras[col]], spec.describe()
    required = {g[0] if g[0] in sources else g[-1] for g in _REQUIRED[fmt] if set(g) & set(sources)}
    if require_label:
        required.add(LABEL[fmt])
    return ColumnPlan(fmt, sources, cells, frozenset(required), extras, roles, declared)


def _check_extras(plan: ColumnPlan, origin: str) -> None:
    for col in plan.extras:
        if col in _CELLS[plan.format]:
            raise SchemaError(
                f"{origin}: field {col!r} is declared extra, but {col} is a column of the "
                f"{plan.format} format; declare its role instead (or rename the column)"
            )


def _missing(fmt: FileFormat, sources: Mapping[str, str], require_label: bool) -> list[str]:
    groups = list(_REQUIRED[fmt]) + ([(LABEL[fmt],)] if require_label else [])
    return [" or ".join(g) for g in groups if not set(g) & set(sources)]


def _missing_message(
    name: str,
    file_columns: Sequence[str],
    fmt: FileFormat,
    missing: list[str],
    fixed: FileFormat | None,
) -> str:
    needed = ", ".join(" or ".join(g) for g in _REQUIRED[fmt])
    roles = ", ".join(_REQUIRED_ROLES[fmt])
    label = f", {LABEL[fmt]}" if any(m == LABEL[fmt] for m in missing) else ""
    hint = ""
    if fixed is not None:
        other: FileFormat = "card" if fixed == "paysim" else "paysim"
        plan = _plan(other, SchemaDeclaration(), _by_key(file_columns), False)
        if not _missing(other, plan.sources, False):
            hint = f" It looks like the {other} format (train --format {other})."
    first = missing[0].split(" or ")[0].upper()
    time_group = " or ".join(_REQUIRED[fmt][0])
    time = _TIME_HINT if time_group in missing else ""
    named = [f"the event time ({m})" if m == time_group else m for m in missing]
    return (
        f"{name} has no column for {', '.join(named)}: the {fmt} format needs {needed}{label} "
        f"(roles {roles}{', label' if label else ''}); the file's columns are "
        f"{', '.join(file_columns)}. Name them so (any case), declare them in a schema file "
        f"(`fraudstream schema infer {name}` proposes one) or map yours, e.g. "
        f"FRAUDSTREAM_REPLAY__COLUMNS__{first}=<your column>.{time}{hint}"
    )
