"""The ``--schema`` option every command that reads transaction files shares.

A command adopts it with a parameter and a call::

    schema: SchemaOption = None,
    ...
    declaration = resolve_schema(schema, settings)  # read_transactions(…, schema=declaration)

``--schema FILE`` is a TOML declaration (``fraudstream schema infer`` proposes one);
``--schema FIELD=COLUMN`` (or ``--column FIELD=COLUMN``) gives one column a role on top of it.
Precedence, lowest first: ``FRAUDSTREAM_SCHEMA__FILE`` (unless a file is given here),
``FRAUDSTREAM_SCHEMA__FORMAT``, ``FRAUDSTREAM_SCHEMA__FIELDS__*``,
``FRAUDSTREAM_REPLAY__COLUMNS__*``, then the options; a later role replaces an earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from fraudstream.config import Settings
from fraudstream.schema._declare import SchemaDeclaration, declare, load_schema, mapping_fields
from fraudstream.schema._roles import alias_of

__all__ = ["SchemaOption", "parse_pairs", "resolve_schema"]

SchemaOption = Annotated[
    list[str] | None,
    typer.Option(
        "--schema",
        "--column",
        metavar="FILE|FIELD=COLUMN",
        help="Schema declaration (TOML; `fraudstream schema infer FILE` proposes one), or "
        "FIELD=COLUMN to give one column a role (a role, message field or file column, e.g. "
        "customerId=cc_num); repeatable, on top of FRAUDSTREAM_SCHEMA__* and "
        "FRAUDSTREAM_REPLAY__COLUMNS__*.",
        show_default=False,
    ),
]


def parse_pairs(pairs: Sequence[str], param_hint: str) -> dict[str, str]:
    """``FIELD=COLUMN`` values as a mapping, or a usage error naming the option."""
    out: dict[str, str] = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target or not source:
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint=param_hint)
        out[target] = source
    return out


def _is_file(value: str) -> bool:
    """Whether a ``--schema`` value names a declaration file rather than a FIELD=COLUMN pair."""
    target, sep, _ = value.partition("=")
    return not sep or Path(value).is_file() or (value.endswith(".toml") and not alias_of(target))


def _split(values: Sequence[str]) -> tuple[Path | None, dict[str, str]]:
    """The declaration file and the FIELD=COLUMN pairs among ``--schema`` values."""
    files = [Path(v) for v in values if _is_file(v)]
    if len(files) > 1:
        raise typer.BadParameter(
            f"give one schema file, got {', '.join(map(str, files))}", param_hint="--schema"
        )
    pairs = parse_pairs([v for v in values if not _is_file(v)], "--schema")
    return (files[0] if files else None), pairs


def resolve_schema(values: Sequence[str] | None, settings: Settings) -> SchemaDeclaration:
    """The declaration from ``--schema`` values and the settings (see the module's notes)."""
    path, pairs = _split(values or ())
    configured = settings.data_schema
    path = path or configured.file
    schema = load_schema(path) if path is not None else declare({}, "schema")
    if configured.format is not None and schema.format is None:
        schema = declare({"format": configured.format, "fields": schema.fields}, schema.origin)
    layers = (
        ("FRAUDSTREAM_SCHEMA__FIELDS", dict(configured.fields)),
        (
            "FRAUDSTREAM_REPLAY__COLUMNS",
            mapping_fields(settings.replay.columns, "FRAUDSTREAM_REPLAY__COLUMNS"),
        ),
        ("--column", mapping_fields(pairs, "--column")),
    )
    for origin, fields in layers:
        if fields:
            schema = schema.with_fields(fields, origin)
    return schema
