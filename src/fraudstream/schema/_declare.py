"""A schema declaration: which of a file's columns plays which role, and its extra fields.

Written in TOML (``fraudstream schema infer`` proposes one)::

    format = "card"                     # optional: paysim or card, else inferred from the roles

    [fields]
    trans_num = "tx_id"                 # a role, a message field or a file column (any case)
    unix_time = { role = "event_time", unit = "s" }
    cc_num = "customerId"
    amt = "amount"
    is_fraud = "label"
    category = "categorical"            # an extra field: categorical, numeric or boolean
    lat = { kind = "latitude", pair = "customer" }
    long = { kind = "longitude", pair = "customer" }

Validated by pydantic; :func:`load_schema` and :func:`declare` turn every problem into one
:class:`~fraudstream.errors.ConfigError` whose lines name the field at fault.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from fraudstream.errors import ConfigError
from fraudstream.schema._roles import (
    EXTRA_KINDS,
    FORMATS,
    ROLES,
    TIME_UNITS,
    Alias,
    ExtraKind,
    FileFormat,
    TimeUnit,
    alias_of,
    file_names,
    role_formats,
)

__all__ = [
    "FieldSpec",
    "SchemaDeclaration",
    "declare",
    "known_roles",
    "load_schema",
    "mapping_fields",
]

_LOCATED: Final = ("latitude", "longitude")
_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "unit": TIME_UNITS,
    "kind": EXTRA_KINDS,
    "format": FORMATS,
}


def _guess(name: str) -> str:
    """`` (did you mean amount?)`` for a name close to a role's or a field's, else nothing."""
    names = [*ROLES, *file_names()]
    close = difflib.get_close_matches(name, names, n=1) or difflib.get_close_matches(
        name.lower(), [n.lower() for n in names], n=1
    )
    return f" (did you mean {close[0]}?)" if close else ""


def known_roles() -> str:
    """The names a role may be given by, grouped by format, for error messages."""
    names = file_names()
    groups: list[tuple[str, list[str]]] = [
        ("roles", list(ROLES)),
        ("fields of both formats", [n for n, a in names.items() if len(role_formats(a)) > 1]),
    ]
    for f in FORMATS:
        only = [n for n, a in names.items() if role_formats(a) == (f,)]
        groups.append((f"{'PaySim' if f == 'paysim' else 'card'} only", only))
    return "; ".join(f"{label}: {', '.join(items)}" for label, items in groups)


class FieldSpec(BaseModel):
    """One source field: a ``role`` (with a ``unit`` for the event time) or an extra ``kind``
    (latitude and longitude name the ``pair``, the location, they belong to)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str | None = None
    unit: TimeUnit | None = None
    kind: ExtraKind | None = None
    pair: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``"amount"`` is ``{role = "amount"}``; ``"categorical"`` is ``{kind = …}``."""
        if isinstance(value, str):
            return {"kind": value} if value in EXTRA_KINDS else {"role": value}
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str | None) -> str | None:
        if role is not None and alias_of(role) is None:
            known = known_roles()
            raise _error(
                f"unknown role {role!r}{_guess(role)}; choose a role or a field name ({known})",
                "role",
            )
        return role

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        alias = self.alias
        if (alias is None) == (self.kind is None):
            raise _error("a field has a role or a kind (an extra field), not both or neither")
        if alias is not None and alias.role != "event_time" and self.unit is not None:
            raise _error(f"a unit is only for the event_time role, not {alias.role}")
        if alias is not None and alias.role == "event_time":
            if alias.unit is not None and self.unit not in (None, alias.unit):
                raise _error(f"{self.role} is in unit {alias.unit}, not {self.unit}")
            if self.time_unit is None:
                raise _error(f"event_time needs a unit: one of {', '.join(TIME_UNITS)}")
        if (self.kind in _LOCATED) != (self.pair is not None):
            raise _error("latitude and longitude need a pair (the location's name), others none")
        return self

    @property
    def alias(self) -> Alias | None:
        """The role this field plays, with the format and unit its name implies."""
        return None if self.role is None else alias_of(self.role)

    @property
    def time_unit(self) -> TimeUnit | None:
        """The event time's unit: the declared one, else the one the role's name implies."""
        alias = self.alias
        return self.unit or (alias.unit if alias is not None else None)

    def formats(self) -> tuple[FileFormat, ...]:
        """The formats this field fits."""
        alias = self.alias
        if alias is None:
            return FORMATS
        return role_formats(alias._replace(unit=self.time_unit))

    def describe(self) -> str:
        """``role`` or ``role (unit)`` or ``extra kind``, for messages."""
        alias = self.alias
        if alias is None:
            return f"extra {self.kind}" + (f" of {self.pair}" if self.pair else "")
        return alias.role + (f" ({self.time_unit})" if alias.role == "event_time" else "")


class SchemaDeclaration(BaseModel):
    """Source field -> :class:`FieldSpec`, and the format (None: inferred from the roles)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: FileFormat | None = None
    fields: dict[str, FieldSpec] = {}
    _origin: str = PrivateAttr("schema")

    @property
    def origin(self) -> str:
        """Where the declaration comes from, as messages name it (a file, ``--column``)."""
        return self._origin

    @model_validator(mode="after")
    def _consistent(self) -> SchemaDeclaration:
        problems = [*self._duplicates(), *self._format_conflicts(), *self._pairs()]
        if problems:
            raise _error("; ".join(problems))
        return self

    def _duplicates(self) -> Iterable[str]:
        seen: dict[str, str] = {}
        for name, spec in self.fields.items():
            if spec.alias is not None:
                first = seen.setdefault(spec.alias.role, name)
                if first != name:
                    yield (
                        f"fields {first!r} and {name!r} both have role {spec.alias.role}; "
                        "give each role to one field"
                    )

    def _format_conflicts(self) -> Iterable[str]:
        if self.format is not None:
            for name, spec in self.fields.items():
                if self.format not in (fits := spec.formats()):
                    yield (
                        f"field {name!r}: {spec.role} is not a role of the {self.format} format "
                        f"(only of {', '.join(fits)})"
                    )
            return
        owner: tuple[str, FileFormat] | None = None
        for name, spec in self.fields.items():
            fits = spec.formats()
            if len(fits) != 1:
                continue
            if owner is None:
                owner = (name, fits[0])
            elif fits[0] != owner[1]:
                yield (
                    f"field {name!r} ({spec.role}) is of the {fits[0]} format, field "
                    f"{owner[0]!r} of the {owner[1]} one; declare the format and its roles only"
                )

    def _pairs(self) -> Iterable[str]:
        pairs: dict[str, list[tuple[str, str]]] = {}
        for name, spec in self.fields.items():
            if spec.pair is not None and spec.kind is not None:
                pairs.setdefault(spec.pair, []).append((spec.kind, name))
        for pair, members in pairs.items():
            kinds = sorted(kind for kind, _ in members)
            if kinds != ["latitude", "longitude"]:
                names = ", ".join(repr(n) for _, n in members)
                yield (
                    f"pair {pair!r} ({names}) needs one latitude and one longitude, "
                    f"has {', '.join(kinds)}"
                )

    def implied_format(self) -> FileFormat | None:
        """The declared format, else the one its roles imply, else None."""
        if self.format is not None:
            return self.format
        only = {f for spec in self.fields.values() if len(f := spec.formats()) == 1}
        return next(iter(only))[0] if only else None

    def extras(self) -> dict[str, FieldSpec]:
        """The extra fields, by source field."""
        return {name: spec for name, spec in self.fields.items() if spec.kind is not None}

    def with_fields(self, fields: Mapping[str, FieldSpec | Any], origin: str) -> SchemaDeclaration:
        """This declaration with ``fields`` on top: a new field replaces the one of the same
        source field and any other holding its role (``--column`` overrides a file)."""
        given = {name: _spec(spec, name, origin) for name, spec in fields.items()}
        roles = {s.alias.role for s in given.values() if s.alias is not None}
        kept = {
            name: spec
            for name, spec in self.fields.items()
            if name not in given and (spec.alias is None or spec.alias.role not in roles)
        }
        merged = origin if self.origin == "schema" else f"{self.origin} with {origin}"
        return declare({"format": self.format, "fields": {**kept, **given}}, merged)


def mapping_fields(mapping: Mapping[str, str], origin: str) -> dict[str, FieldSpec]:
    """A column mapping (target field -> the file's column, as ``--column FIELD=COLUMN`` and
    ``FRAUDSTREAM_REPLAY__COLUMNS__<FIELD>``) as declared fields."""
    out: dict[str, FieldSpec] = {}
    for target, source in mapping.items():
        if alias_of(target) is None:
            raise ConfigError(
                f"{origin}: unknown target field {target!r} (for column {source!r})"
                f"{_guess(target)}; choose a role or a field name ({known_roles()})"
            )
        out[source] = _spec(target, source, origin)
    return out


def _spec(spec: FieldSpec | Any, name: str, origin: str) -> FieldSpec:
    if isinstance(spec, FieldSpec):
        return spec
    try:
        return FieldSpec.model_validate(spec)
    except ValidationError as exc:
        raise _config_error(exc, origin, field=name) from exc


def _error(message: str, kind: str = "schema") -> PydanticCustomError:
    """A validation error whose message is ``message`` as it is (user text is not a template)."""
    return PydanticCustomError(kind, "{message}", {"message": message})


def declare(data: Mapping[str, Any], origin: str = "schema") -> SchemaDeclaration:
    """Validate a declaration given as a mapping (e.g. parsed TOML); ``origin`` names it."""
    try:
        schema = SchemaDeclaration.model_validate(dict(data))
    except ValidationError as exc:
        raise _config_error(exc, origin) from exc
    schema._origin = origin
    return schema


def load_schema(path: Path) -> SchemaDeclaration:
    """Read and validate a TOML declaration."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"schema file {path} not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{Path(path).name}: not valid TOML: {exc}") from exc
    return declare(data, Path(path).name)


def _config_error(exc: ValidationError, origin: str, field: str | None = None) -> ConfigError:
    lines = [_line(err, field) for err in exc.errors(include_url=False)]
    return ConfigError(f"{origin}: " + "; ".join(dict.fromkeys(lines)))


def _line(err: ErrorDetails, field: str | None) -> str:
    loc = [str(part) for part in err["loc"]]
    if field is None and loc[:1] == ["fields"] and len(loc) > 1:
        field, loc = loc[1], loc[2:]
    elif loc[:1] == ["fields"]:
        loc = loc[1:]
    where = f"field {field!r}: " if field is not None else ""
    attr = loc[0] if loc else ""
    given = err.get("input")
    if err["type"] == "role":
        return f"{where}{err['msg']}"
    if err["type"] == "literal_error" and attr in _CHOICES:
        return f"{where}unknown {attr} {given!r}; choose from {', '.join(_CHOICES[attr])}"
    if err["type"] == "extra_forbidden":
        known = "role, unit, kind, pair" if where else "format, fields"
        return f"{where}unknown key {attr!r}; expected {known}"
    if err["type"] in ("model_type", "dict_type") and not attr:
        example = '"amount" or { role = "event_time", unit = "s" }' if where else "[fields]"
        return f"{where}expected a role name or a table such as {example}, got {given!r}"
    if err["type"] in ("string_type",):
        return f"{where}{attr} must be text, got {given!r}"
    return f"{where}{(attr + ': ') if attr else ''}{err['msg']}"
