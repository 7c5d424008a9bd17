"""Label files (chargebacks, disputes, exported verdicts; CSV or Parquet) read into label records.

Read like transaction files (``schema._files``): headers match in any case, a UTF-8 byte-order
mark and surrounding spaces ignored; an empty cell, ``NA``, ``N/A``, ``NaN``, ``null`` or
``None`` is missing; a row with a missing required value or a value that does not parse is
skipped, and one warning gives the count per column with examples (CSV: the line, the header
being line 1; Parquet: the row, from 1) and what was expected.

The fields (target -> the file's column, mapped with ``columns``, e.g. the settings'
``FRAUDSTREAM_LABELS__COLUMNS__TX_ID=case_ref``; unmapped fields are found by these names):

- ``tx_id`` (required; ``tx_id``, ``txId``, ``transaction_id``): the transaction's id.
- ``labelled_at`` (required; ``labelled_at_ms``, ``labelled_at``, ``label_time``): when the
  verdict became known: milliseconds since the epoch, or an ISO date / date-time (UTC unless it
  says otherwise). Required so a re-import gives each row the same ``label_id``.
- ``label`` (``label``, ``verdict``, ``isFraud``, ``is_fraud``): 1/0, ``fraud``/``genuine``,
  ``true``/``false``, ``yes``/``no``; without the column every row is a fraud (a chargeback file
  lists frauds).
- ``account``, ``counterparty`` (the transaction's receiver, merchant or terminal),
  ``tx_time`` (``tx_time_ms``, ``tx_time``: the labelled transaction's event time, like
  ``labelled_at``): the transaction's facts a detector keeps label features by. Optional: a
  missing one is left for ``labels import`` to complete (from a transactions file or the store)
  or for the detector to look up.
- ``source`` (one of ``LABEL_SOURCES``; else the ``source`` argument), ``reason``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import msgspec.structs
import polars as pl

from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema._bounds import MAX_EVENT_TIME_MS, MAX_ID_CHARS
from fraudstream.schema._files import NULL_TOKENS, _key, _read_raw
from fraudstream.schema._labels import (
    LABEL_SOURCES,
    MAX_REASON_CHARS,
    LabelMessage,
    LabelSource,
)

__all__ = [
    "LABEL_FIELDS",
    "LabelFile",
    "TxFacts",
    "complete_labels",
    "incomplete",
    "known_from",
    "read_labels",
]

log = logging.getLogger(__name__)

#: Each field and the column names that stand for it when not mapped (compared in lower case).
LABEL_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "tx_id": ("tx_id", "txid", "transaction_id"),
    "labelled_at": ("labelled_at_ms", "labelled_at", "label_time"),
    "label": ("label", "verdict", "isfraud", "is_fraud"),
    "account": ("account",),
    "counterparty": ("counterparty",),
    "tx_time": ("tx_time_ms", "tx_time"),
    "source": ("source",),
    "reason": ("reason",),
}
_REQUIRED: Final = ("tx_id", "labelled_at")
_FRAUD: Final = frozenset({"1", "1.0", "true", "yes", "y", "fraud"})
_GENUINE: Final = frozenset({"0", "0.0", "false", "no", "n", "genuine", "legitimate"})
_EXPECTED: Final = {
    "tx_id": f"an id of 1 to {MAX_ID_CHARS} printable characters",
    "account": f"an id of 1 to {MAX_ID_CHARS} printable characters",
    "counterparty": f"an id of 1 to {MAX_ID_CHARS} printable characters",
    "labelled_at": "milliseconds since 1970-01-01 or an ISO date/time before 2100",
    "tx_time": "milliseconds since 1970-01-01 or an ISO date/time before 2100",
    "label": "1/0, fraud/genuine, true/false or yes/no",
    "source": f"one of {', '.join(LABEL_SOURCES)}",
    "reason": f"text of at most {MAX_REASON_CHARS} printable characters",
}
_EXAMPLES: Final = 3
#: A transaction's ``(account, counterparty, event_time_ms)``, as ``Store.lookup_transactions``
#: gives them (``None``: unknown).
TxFacts = tuple[str | None, str | None, int | None]


@dataclass(frozen=True)
class LabelFile:
    """A label file's usable rows as label records, in file order.

    ``rows`` is each label's line (CSV, header = line 1) or row (Parquet, from 1).
    """

    path: Path
    labels: list[LabelMessage]
    rows: list[int]
    rows_read: int
    problems: tuple[str, ...]

    @property
    def skipped(self) -> int:
        """Rows left out for a missing or invalid value (see :attr:`problems`)."""
        return self.rows_read - len(self.labels)


class _Bad(Exception):
    """A cell that does not parse (internal: becomes a problem line)."""


def read_labels(
    path: Path, *, columns: Mapping[str, str] | None = None, source: LabelSource = "chargeback"
) -> LabelFile:
    """Read a CSV or Parquet label file (see the module's notes).

    ``source`` is the label source of rows without a ``source`` column (or cell).
    """
    path = Path(path)
    frame, where = _read_raw(path)
    sources = _resolve(path.name, frame.columns, columns or {})
    offset = 1 if where == "line" else 0  # CSV data starts on line 2
    labels: list[LabelMessage] = []
    rows: list[int] = []
    bad: dict[str, list[tuple[int, object]]] = {}
    read = 0
    picked = frame.select(pl.col(c).alias(f) for f, c in sources.items())
    for i, row in enumerate(picked.iter_rows(named=True), start=1):
        cells = {f: _missing_to_none(v) for f, v in row.items()}
        if all(v is None for v in cells.values()):
            continue  # a blank line
        read += 1
        try:
            labels.append(_label(cells, source))
            rows.append(i + offset)
        except _Bad as exc:
            field = str(exc)
            bad.setdefault(field, []).append((i + offset, row[field]))
    problems = tuple(_problem(f, sources[f], b, where) for f, b in bad.items())
    if not labels:
        detail = "; ".join(problems) if problems else "the file has no data rows"
        raise SchemaError(f"{path.name}: no usable label ({detail})")
    if problems:
        log.warning(
            "%s: skipped %s of %s rows with a missing or invalid value: %s",
            path.name,
            f"{read - len(labels):,}",
            f"{read:,}",
            "; ".join(problems),
        )
    return LabelFile(path, labels, rows, read, problems)


def _resolve(name: str, file_columns: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Label field -> the file's column: the user's mapping, then the known names."""
    by_key = {_key(c): c for c in reversed(file_columns)}  # the first of equal names wins
    sources: dict[str, str] = {}
    for target, column in mapping.items():
        field = _key(target).removesuffix("_column")
        if field not in LABEL_FIELDS:
            raise ConfigError(
                f"label column mapping: unknown field {target!r}; choose from "
                f"{', '.join(LABEL_FIELDS)}"
            )
        if _key(column) not in by_key:
            raise SchemaError(
                f"label column mapping: {column!r} (for {field}) not in {name}; its columns are "
                f"{', '.join(file_columns)}"
            )
        sources[field] = by_key[_key(column)]
    used = set(sources.values())
    for field, names in LABEL_FIELDS.items():
        if field in sources:
            continue
        found = next((by_key[n] for n in names if n in by_key and by_key[n] not in used), None)
        if found is not None:
            sources[field] = found
    missing = [f for f in _REQUIRED if f not in sources]
    if missing:
        options = " ".join(f"--{f.replace('_', '-')}-column COLUMN" for f in missing)
        raise SchemaError(
            f"{name} has no column for {', '.join(missing)}; its columns are "
            f"{', '.join(file_columns)}. Name them so (any case) or map yours: {options} "
            f"(or FRAUDSTREAM_LABELS__COLUMNS__{missing[0].upper()}=<your column>)"
        )
    return sources


def _missing_to_none(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, str):
        text = value.strip()
        return None if text.lower() in NULL_TOKENS else text
    return value


def _label(cells: Mapping[str, Any], default_source: LabelSource) -> LabelMessage:
    fields: dict[str, Any] = {
        "tx_id": _text(cells, "tx_id", MAX_ID_CHARS, required=True),
        "labelled_at_ms": _time_ms(cells, "labelled_at", required=True),
        "label": _verdict(cells.get("label")),
        "account": _text(cells, "account", MAX_ID_CHARS),
        "counterparty": _text(cells, "counterparty", MAX_ID_CHARS),
        "tx_time_ms": _time_ms(cells, "tx_time"),
        "source": _source(cells.get("source"), default_source),
        "reason": _text(cells, "reason", MAX_REASON_CHARS),
    }
    try:
        return msgspec.convert(fields, LabelMessage)
    except msgspec.ValidationError as exc:  # defensive: the checks above cover the bounds
        raise _Bad("tx_id") from exc


def _text(cells: Mapping[str, Any], field: str, longest: int, *, required: bool = False) -> Any:
    value = cells.get(field)
    if value is None:
        if required:
            raise _Bad(field)
        return None
    text = str(value)
    if not (0 < len(text) <= longest and text.isprintable()):
        raise _Bad(field)
    return text


def _time_ms(cells: Mapping[str, Any], field: str, *, required: bool = False) -> int | None:
    value = cells.get(field)
    if value is None:
        if required:
            raise _Bad(field)
        return None
    if isinstance(value, dt.datetime | dt.date):
        when = value if isinstance(value, dt.datetime) else dt.datetime(*value.timetuple()[:3])
        ms = _epoch_ms(when)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ms = int(value) if float(value).is_integer() else -1
    else:
        text = str(value)
        if text.isdigit():
            ms = int(text)
        else:
            try:
                ms = _epoch_ms(dt.datetime.fromisoformat(text))
            except ValueError:
                ms = -1
    if not 0 <= ms < MAX_EVENT_TIME_MS:
        raise _Bad(field)
    return ms


def _epoch_ms(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _verdict(value: object) -> int:
    if value is None:
        return 1
    text = str(value).strip().lower()
    if text in _FRAUD:
        return 1
    if text in _GENUINE:
        return 0
    raise _Bad("label")


def _source(value: object, default: LabelSource) -> str:
    if value is None:
        return default
    text = str(value).strip().lower()
    if text not in LABEL_SOURCES:
        raise _Bad("source")
    return text


def _problem(field: str, column: str, bad: list[tuple[int, object]], where: str) -> str:
    shown = ", ".join(f"{where} {r} {('' if c is None else str(c))!r}" for r, c in bad[:_EXAMPLES])
    more = ", ..." if len(bad) > _EXAMPLES else ""
    plural = "row" if len(bad) == 1 else "rows"
    name = field if column == field else f"{field} (column {column!r})"
    return f"{name}: {len(bad):,} {plural} ({shown}{more}); expected {_EXPECTED[field]}"


def incomplete(label: LabelMessage) -> bool:
    """Whether ``label`` lacks its transaction's account, counterparty or event time."""
    return label.account is None or label.counterparty is None or label.tx_time_ms is None


def complete_labels(
    labels: Sequence[LabelMessage], facts: Mapping[str, TxFacts]
) -> tuple[list[LabelMessage], int]:
    """``labels`` with their missing ``account``, ``counterparty`` and ``tx_time_ms`` taken from
    ``facts`` (by ``tx_id``; values a label has are kept), and how many labels gained one.

    >>> label = LabelMessage(tx_id="t1", label=1, labelled_at_ms=9, account="C1")
    >>> done, n = complete_labels([label], {"t1": ("C9", "M2", 5)})
    >>> (done[0].account, done[0].counterparty, done[0].tx_time_ms, n)
    ('C1', 'M2', 5, 1)
    """
    out: list[LabelMessage] = []
    gained = 0
    for label in labels:
        known = facts.get(label.tx_id)
        if known is None or not incomplete(label):
            out.append(label)
            continue
        account, counterparty, tx_time_ms = known
        filled = msgspec.structs.replace(
            label,
            account=label.account if label.account is not None else account,
            counterparty=label.counterparty if label.counterparty is not None else counterparty,
            tx_time_ms=label.tx_time_ms if label.tx_time_ms is not None else tx_time_ms,
        )
        gained += filled != label
        out.append(filled)
    return out, gained


def known_from(labels: Sequence[LabelMessage], now_ms: int) -> tuple[list[LabelMessage], int]:
    """``labels`` with every ``labelled_at_ms`` before ``now_ms`` moved to ``now_ms`` (a bank
    learns an imported verdict when it imports it), and how many were moved. A moved label gets
    the ``label_id`` of its new time.

    >>> old = LabelMessage(tx_id="t1", label=1, labelled_at_ms=5)
    >>> moved, n = known_from([old], 9)
    >>> (moved[0].labelled_at_ms, n, moved[0].label_id == old.label_id)
    (9, 1, False)
    """
    out = [
        msgspec.structs.replace(m, labelled_at_ms=now_ms, label_id=None)
        if m.labelled_at_ms < now_ms
        else m
        for m in labels
    ]
    return out, sum(m.labelled_at_ms < now_ms for m in labels)
