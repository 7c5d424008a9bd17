"""Export the store by day: one file per table and UTC day, a manifest, resumable, repeatable.

Layout under the destination: ``<table>/day=YYYY-MM-DD/<table>-YYYY-MM-DD.<parquet|csv>``
(Hive-style, so Spark, DuckDB, Athena or polars read ``<table>/`` as one dataset), and
``_fraudstream_export.json``, the manifest: per table and day, the rows written and whether the
day was *closed* when written (the store already held rows at least ``close_after_ms`` past the
day's end, so no more rows are expected for it).

- **Repeatable**: a day's file is built in full, then put in place of the old one; the same
  store gives the same bytes (rows in key order), so exporting a day again rewrites it.
- **Resumable**: a run skips the days the manifest records as closed (unless asked for them
  by ``since``/``until``) and writes the manifest after every day, so an interrupted run goes on
  from the day it was writing. Open days (today, the newest) are written again on every run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudstream.dashboard import Database
from fraudstream.export._tables import TABLES, Table, feature_sets, record_batches
from fraudstream.export._targets import Target

__all__ = ["MANIFEST", "DayResult", "ExportRun", "day_range", "export_days"]

log = logging.getLogger(__name__)

Format = Literal["parquet", "csv"]
MANIFEST: Final = "_fraudstream_export.json"
DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class DayResult:
    """What was written for one table and day."""

    table: str
    day: dt.date
    rows: int
    bytes: int
    closed: bool
    path: str
    seconds: float


@dataclass
class ExportRun:
    """The days written and skipped by one :func:`export_days` call."""

    written: list[DayResult] = field(default_factory=list)
    skipped: int = 0

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.written)


def day_range(first_ms: int, last_ms: int) -> list[dt.date]:
    """The UTC days from the one holding ``first_ms`` to the one holding ``last_ms``."""
    first, last = first_ms // DAY_MS, last_ms // DAY_MS
    return [_day(d * DAY_MS) for d in range(first, last + 1)]


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _relpath(table: Table, day: dt.date, fmt: Format) -> str:
    return f"{table.name}/day={day.isoformat()}/{table.name}-{day.isoformat()}.{fmt}"


def _write_file(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    fmt: Format,
    out: Path,
    feature_names: Sequence[str],
) -> int:
    """Write every batch to ``out`` (an empty file has the header/schema only); rows written.

    CSV has no nested values: the ``features`` map becomes one column per name of
    ``feature_names`` (every model version's), ``features.<name>``, empty where a row's model
    has no such feature.
    """
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(out, schema, compression="zstd") as w:
            for b in batches:
                w.write_batch(b)
                rows += b.num_rows
        return rows
    fields = []
    for f in schema:
        if pa.types.is_map(f.type):
            fields += [pa.field(f"{f.name}.{n}", pa.float32()) for n in feature_names]
        else:
            fields.append(f)
    flat = pa.schema(fields)
    with pacsv.CSVWriter(out, flat) as w:
        for b in batches:
            w.write_batch(_csv_batch(b, flat, feature_names))
            rows += b.num_rows
    return rows


def _csv_batch(
    batch: pa.RecordBatch, flat: pa.Schema, feature_names: Sequence[str]
) -> pa.RecordBatch:
    """``batch`` with its map column spread over one column per feature name (vectorised)."""
    cols: list[pa.Array] = []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if not pa.types.is_map(f.type):
            cols.append(col)
            continue
        n, width = len(col), len(feature_names)
        offsets = col.offsets.to_numpy()
        where = pc.index_in(col.keys, value_set=pa.array(list(feature_names), pa.string()))
        rows = np.repeat(np.arange(n), np.diff(offsets))
        grid = np.full((n, width), np.nan, dtype=np.float32)
        present = np.zeros((n, width), dtype=np.bool_)
        at = where.to_numpy(zero_copy_only=False).astype(np.int64)
        grid[rows, at] = col.items.to_numpy(zero_copy_only=False)
        present[rows, at] = True
        cols += [pa.array(grid[:, j], mask=~present[:, j]) for j in range(width)]
    return pa.RecordBatch.from_arrays(cols, schema=flat)


def _span(db: Database, table: Table) -> tuple[int | None, int | None]:
    row = db.one(f"SELECT min({table.day_column}), max({table.day_column}) FROM {table.source}")
    return (None, None) if row is None else (row[0], row[1])


def _load_manifest(target: Target) -> dict[str, Any]:
    text = target.read_text(MANIFEST)
    if text is None:
        return {"version": 1, "tables": {}}
    doc: dict[str, Any] = json.loads(text)
    doc.setdefault("tables", {})
    return doc


def export_days(
    db: Database,
    target: Target,
    *,
    tables: Sequence[str] = ("transactions", "alerts", "labels"),
    fmt: Format = "parquet",
    since: dt.date | None = None,
    until: dt.date | None = None,
    close_after_ms: int = 3_600_000,
    chunk: int = 50_000,
    should_stop: Callable[[], bool] = lambda: False,
) -> ExportRun:
    """Export ``tables`` of the store to ``target``, one file per UTC day (see the module).

    ``since``/``until`` (inclusive) limit the days and rewrite them even when closed.
    """
    run = ExportRun()
    manifest = _load_manifest(target)
    names = feature_sets(db)
    explicit = since is not None or until is not None
    for name in tables:
        table = TABLES[name]
        first, newest = _span(db, table)
        if first is None or newest is None:
            continue
        done: dict[str, Any] = manifest["tables"].setdefault(name, {})
        for day in day_range(first, newest):
            if (since and day < since) or (until and day > until):
                continue
            if should_stop():
                return run
            key = day.isoformat()
            if not explicit and done.get(key, {}).get("closed"):
                run.skipped += 1
                continue
            start = _day_ms(day)
            closed = newest >= start + DAY_MS + close_after_ms
            result = _export_day(db, target, table, day, start, fmt, names, chunk, closed)
            run.written.append(result)
            done[key] = {
                "rows": result.rows,
                "bytes": result.bytes,
                "closed": closed,
                "format": fmt,
                "path": result.path,
                "written_at_ms": int(time.time() * 1000),
            }
            target.write_text(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return run


def _export_day(
    db: Database,
    target: Target,
    table: Table,
    day: dt.date,
    start: int,
    fmt: Format,
    names: dict[str, tuple[str, ...]],
    chunk: int,
    closed: bool,
) -> DayResult:
    began = time.monotonic()
    relpath = _relpath(table, day, fmt)
    with tempfile.TemporaryDirectory(prefix="fraudstream-export-") as tmp:
        out = Path(tmp) / f"part.{fmt}"
        batches = record_batches(db, table, start, start + DAY_MS, names, chunk)
        every = list(dict.fromkeys(k for ks in names.values() for k in ks))
        rows = _write_file(batches, table.schema, fmt, out, every)
        size = out.stat().st_size
        target.put_file(relpath, out)
    took = time.monotonic() - began
    log.info("%s %s: %d row(s), %d bytes in %.1f s", table.name, day, rows, size, took)
    return DayResult(table.name, day, rows, size, closed, relpath, took)
