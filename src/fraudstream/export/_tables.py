"""What each exported table holds, and its rows from the store as Arrow record batches.

Times become UTC timestamps (milliseconds); a transaction's features become one
``map<string, float>`` column named by its model version's ``feature_sets`` entry, so days scored
by different models share one schema (CSV gets the same map as a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraudstream.dashboard import Database

__all__ = ["TABLES", "Table", "feature_map", "feature_sets", "record_batches"]

_TS: Final = pa.timestamp("ms", tz="UTC")
_FEATURES: Final = pa.map_(pa.string(), pa.float32())
#: JSON columns (text in SQLite, jsonb in PostgreSQL): written as compact JSON, keys sorted
_JSON: Final = frozenset({"reasons", "rules_fired", "rules_shadow"})
#: The fraud team's rules that acted (JSON arrays of ids, null when none) and their set's version.
_RULES: Final = (
    ("rules_fired", pa.string()),
    ("rules_shadow", pa.string()),
    ("rule_set_version", pa.int64()),
)


@dataclass(frozen=True)
class Table:
    """One exported table: its store table, the time column that picks its day, its columns
    (name, Arrow type; ``features`` is decoded), in the order written."""

    name: str
    source: str
    day_column: str
    key: str
    columns: tuple[tuple[str, pa.DataType], ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t) for n, t in self.columns])

    def query(self) -> str:
        cols = ", ".join(f'"{n}"' for n, _ in self.columns)
        return (
            f"SELECT {cols} FROM {self.source} WHERE {self.day_column} >= ? AND "
            f"{self.day_column} < ? ORDER BY {self.day_column}, {self.key}"
        )


TABLES: Final[dict[str, Table]] = {
    t.name: t
    for t in (
        Table(
            "transactions",
            "transactions_enriched",
            "event_time_ms",
            "tx_id",
            (
                ("tx_id", pa.string()),
                ("event_time_ms", _TS),
                ("account", pa.string()),
                ("counterparty", pa.string()),
                ("kind", pa.string()),
                ("amount", pa.float64()),
                ("old_balance_orig", pa.float64()),
                ("new_balance_orig", pa.float64()),
                ("old_balance_dest", pa.float64()),
                ("new_balance_dest", pa.float64()),
                ("label", pa.int8()),
                ("step", pa.int64()),
                ("score", pa.float64()),
                ("decision", pa.string()),
                ("model_version", pa.string()),
                ("partition", pa.int32()),
                ("offset", pa.int64()),
                ("processed_at_ms", _TS),
                *_RULES,
                ("features", _FEATURES),
            ),
        ),
        Table(
            "alerts",
            "fraud_alerts",
            "created_at_ms",
            "alert_id",
            (
                ("alert_id", pa.string()),
                ("tx_id", pa.string()),
                ("created_at_ms", _TS),
                ("event_time_ms", _TS),
                ("account", pa.string()),
                ("counterparty", pa.string()),
                ("amount", pa.float64()),
                ("score", pa.float64()),
                ("decision", pa.string()),
                ("reasons", pa.string()),
                ("model_version", pa.string()),
                ("status", pa.string()),
                ("analyst", pa.string()),
                ("reviewed_at_ms", _TS),
                *_RULES,
            ),
        ),
        Table(
            "labels",
            "labels",
            "labelled_at_ms",
            "label_id",
            (
                ("label_id", pa.string()),
                ("tx_id", pa.string()),
                ("account", pa.string()),
                ("counterparty", pa.string()),
                ("tx_time_ms", _TS),
                ("label", pa.int8()),
                ("source", pa.string()),
                ("labelled_at_ms", _TS),
                ("alert_id", pa.string()),
                ("analyst", pa.string()),
                ("reason", pa.string()),
                ("recorded_at_ms", _TS),
            ),
        ),
    )
}


def feature_sets(db: Database) -> dict[str, tuple[str, ...]]:
    """Model version → its feature names, in stored order (JSON text in SQLite, an array in
    PostgreSQL)."""
    out: dict[str, tuple[str, ...]] = {}
    for version, names in db.rows("SELECT model_version, feature_names FROM feature_sets"):
        out[str(version)] = tuple(json.loads(names) if isinstance(names, str) else names)
    return out


def feature_map(
    values: Sequence[Any], versions: Sequence[str], names: Mapping[str, tuple[str, ...]]
) -> pa.MapArray:
    """Stored feature rows (float32 BLOBs or float arrays) as a ``map<string, float>`` array,
    keys from each row's model version; vectorised over the rows."""
    n = len(values)
    if n == 0:
        return pa.array([], type=_FEATURES)
    flat = _flat_values(values)
    uniq, code = np.unique(np.asarray(versions, dtype=object), return_inverse=True)
    sizes = np.array([len(names.get(str(v), ())) for v in uniq], dtype=np.int64)
    per_row = sizes[code]
    if int(per_row.sum()) != len(flat):
        missing = [str(v) for v in uniq if str(v) not in names]
        raise ValueError(
            f"stored features do not match feature_sets (versions without names: {missing})"
        )
    all_names = pa.array([k for v in uniq for k in names.get(str(v), ())], type=pa.string())
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    pos = np.arange(len(flat)) - np.repeat(offsets[:-1], per_row)
    keys = all_names.take(pa.array(np.repeat(base[code], per_row) + pos))  # no Python strings
    return pa.MapArray.from_arrays(
        pa.array(offsets, type=pa.int32()), keys, pa.array(flat, type=pa.float32())
    )


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    doc = json.loads(value) if isinstance(value, str | bytes) else value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _flat_values(values: Sequence[Any]) -> npt.NDArray[np.float32]:
    first = values[0]
    if isinstance(first, bytes | bytearray | memoryview):
        return np.frombuffer(b"".join(bytes(v) for v in values), dtype="<f4")
    return np.concatenate([np.asarray(v, dtype=np.float32) for v in values])


def record_batches(
    db: Database,
    table: Table,
    start_ms: int,
    end_ms: int,
    names: Mapping[str, tuple[str, ...]],
    chunk: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """The table's rows with ``start_ms <= day column < end_ms``, in key order, as batches."""
    schema = table.schema
    index = {n: i for i, (n, _) in enumerate(table.columns)}
    for rows in db.chunks(table.query(), (start_ms, end_ms), size=chunk):
        cols = list(zip(*rows, strict=True))
        arrays: list[pa.Array] = []
        for name, kind in table.columns:
            col = cols[index[name]]
            if name == "features":
                arrays.append(feature_map(col, cols[index["model_version"]], names))
            elif name in _JSON:
                arrays.append(pa.array([_json_text(v) for v in col], type=pa.string()))
            elif kind == _TS:
                arrays.append(pa.array(col, type=pa.int64()).cast(_TS))
            else:
                arrays.append(pa.array(col, type=kind))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
