"""The two readers of :func:`fraudstream.sinks.load_history`, both through ADBC (Arrow columns,
no Python object per value: 1 M SQLite rows in about 2 s where the ``sqlite3`` module's row
tuples took 17): SQLite read-only, its verdicts read apart and joined by ``rowid``; PostgreSQL
in the store's schema, only the ``real[]`` elements asked for, its verdicts joined in SQL.

Both return the same raw frame: ``event_time_ms``, ``amount``, ``score``, ``model_version``,
``final_decision``, ``_ruled`` (a live rule fired), ``_verdict`` and ``_truth`` (null: none), the
stored columns asked for (under their rule names) and the features asked for (Float32; NaN where
the row's model version has no such feature).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from fraudstream._redact import redact
from fraudstream.errors import SchemaError, StoreError
from fraudstream.schema import VERDICTS
from fraudstream.sinks._feedback import RANKED_VERDICTS
from fraudstream.sinks._sqlconn import SqlConnection

__all__ = ["STORED", "read_postgres", "read_sqlite"]

#: The rule frame's transaction columns (``rules.Schema`` names) and their stored columns.
STORED: Final = {
    "type": "kind",
    "account": "account",
    "counterparty": "counterparty",
    "oldbalanceOrg": "old_balance_orig",
    "newbalanceOrig": "new_balance_orig",
    "oldbalanceDest": "old_balance_dest",
    "newbalanceDest": "new_balance_dest",
}
_STRINGS: Final = frozenset({"type", "account", "counterparty"})
_BASE: Final = (
    ("event_time_ms", "t.event_time_ms", pl.Int64),
    ("amount", "t.amount", pl.Float64),
    ("score", "t.score", pl.Float64),
    ("model_version", "t.model_version", pl.String),
    (
        "final_decision",
        "CASE t.decision WHEN 'review' THEN 1 WHEN 'block' THEN 2 ELSE 0 END",
        pl.Int8,
    ),
    ("_ruled", "CASE WHEN t.rules_fired IS NULL THEN 0 ELSE 1 END", pl.Int8),
    ("_truth", "t.label", pl.Int8),
)
_RANGE: Final = "t.event_time_ms >= ? AND t.event_time_ms < ?"

Names = Mapping[str, tuple[str, ...]]
F32 = npt.NDArray[np.float32]


def _select(stored: Sequence[str], features: Sequence[str]) -> list[str]:
    cols = [f"{sql} AS {name}" for name, sql, _ in _BASE]
    cols += [f"t.{STORED[c]} AS {_alias(c)}" for c in stored]
    return cols + (["t.features AS _features"] if features else [])


def _alias(column: str) -> str:
    return f'"{column}"'


def _typed(frame: pl.DataFrame, stored: Sequence[str]) -> pl.DataFrame:
    casts = [pl.col(n).cast(t) for n, _, t in _BASE]
    casts += [pl.col(c).cast(pl.String if c in _STRINGS else pl.Float64) for c in stored]
    return frame.with_columns(casts)


def read_sqlite(
    db: SqlConnection,
    start_ms: int,
    end_ms: int,
    stored: Sequence[str],
    features: Sequence[str],
    names: Names,
) -> pl.DataFrame:
    """The rows of ``[start_ms, end_ms)`` of the SQLite store ``db`` (read-only, through ADBC);
    verdicts are read apart (few rows) and joined by ``rowid``."""
    import adbc_driver_sqlite.dbapi as adbc

    sql = f"SELECT t.rowid AS _rowid, {', '.join(_select(stored, features))} "
    sql += f"FROM transactions_enriched t WHERE {_RANGE}"
    uri = Path(db.path).resolve().as_uri() + "?mode=ro"
    # ADBC's SQLite driver types a column from its first batch: one batch for the whole result,
    # so a column that starts with NULLs (balances, labels) still gets its values' type
    count = f"SELECT count(*) FROM transactions_enriched t WHERE {_RANGE}"
    rows = int(db.rows(count, (int(start_ms), int(end_ms)))[0][0])
    with _guard(db), adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(max(rows, 1))})
        cur.execute(sql, parameters=(int(start_ms), int(end_ms)))
        table: pa.Table = cur.fetch_arrow_table()
    frame = _frame(table, features, names)
    verdicts = db.rows(
        f"WITH {RANKED_VERDICTS} SELECT t.rowid, r.label FROM ranked r JOIN "
        f"transactions_enriched t ON t.tx_id = r.tx_id WHERE r.rank = 1 AND {_RANGE}",
        (*VERDICTS, int(start_ms), int(end_ms)),
    )
    by_row = pl.DataFrame(verdicts, schema={"_rowid": pl.Int64, "_verdict": pl.Int8}, orient="row")
    frame = frame.with_columns(pl.col("_rowid").cast(pl.Int64))
    return _typed(frame.join(by_row, on="_rowid", how="left").drop("_rowid"), stored)


def _frame(table: pa.Table, features: Sequence[str], names: Names) -> pl.DataFrame:
    """``table`` as a frame, its ``_features`` column replaced by the ``features`` asked for."""
    decoded = _features(table, features, names) if features else {}
    frame = pl.from_arrow(table.drop_columns(["_features"]) if features else table)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table gives a frame
    return frame.with_columns(pl.Series(n, v) for n, v in decoded.items())


def _features(table: pa.Table, wanted: Sequence[str], names: Names) -> dict[str, F32]:
    """The ``wanted`` features of each row, gathered per model version from the float32 BLOBs
    by byte offset (no Python object per row); NaN where the row's version has no such
    feature."""
    n = table.num_rows
    out = {f: np.full(n, np.nan, np.float32) for f in wanted}
    if n == 0:
        return out
    values, offsets, width = _flat(table.column("_features").combine_chunks())
    encoded = pc.dictionary_encode(table.column("model_version")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    for k, v in enumerate(encoded.dictionary.to_pylist()):
        stored = names.get(str(v), ())
        rows = np.flatnonzero(codes == k)
        start = offsets[rows].astype(np.int64)
        if np.any(offsets[rows + 1] - start != width * len(stored)):
            raise SchemaError(f"stored features of model version {v!r} do not match feature_sets")
        if len(rows) == n:  # one version: the stored rows are one matrix, read in place
            lo = int(offsets[0])
            matrix = values[lo : lo + n * width * len(stored)].reshape(n, width * len(stored))
        for f in wanted:
            if f not in stored:
                continue
            j = width * stored.index(f)
            if len(rows) == n:
                out[f] = np.ascontiguousarray(matrix[:, j : j + width]).view("<f4").ravel()
            else:
                at = start[:, None] + j + np.arange(width)
                out[f][rows] = np.ascontiguousarray(values[at]).view("<f4").ravel()
    return out


def _flat(column: pa.Array) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], int]:
    """The stored float32 BLOBs as one byte array, each row's start in it (and the end of the
    last), and the bytes of one float32."""
    if pa.types.is_large_binary(column.type):
        column = column.cast(pa.binary())
    offsets = np.frombuffer(column.buffers()[1], np.int32, len(column) + 1, column.offset * 4)
    data = np.frombuffer(column.buffers()[2] or b"", np.uint8)
    return data, offsets.astype(np.int64), 4


def read_postgres(
    db: SqlConnection,
    start_ms: int,
    end_ms: int,
    stored: Sequence[str],
    features: Sequence[str],
    names: Names,
) -> pl.DataFrame:
    """The rows of ``[start_ms, end_ms)`` of the PostgreSQL store ``db`` (through ADBC, in the
    store's schema), verdicts joined in SQL."""
    import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]

    picked, versions = _pg_features(features, names)
    sql = (
        f"WITH {RANKED_VERDICTS} SELECT {', '.join([*_select(stored, []), *picked])}, "
        "r.label AS _verdict FROM transactions_enriched t "
        f"LEFT JOIN ranked r ON r.tx_id = t.tx_id AND r.rank = 1 WHERE {_RANGE}"
    )
    numbered = iter(range(1, sql.count("?") + 1))
    sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
    params = (*VERDICTS, *versions, int(start_ms), int(end_ms))
    with _guard(db), adbc.connect(_pg_uri(db.url, db.schema)) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters=params)
        table: pa.Table = cur.fetch_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table gives a frame
    nan = float("nan")
    return _typed(frame, stored).with_columns(
        pl.col("_verdict").cast(pl.Int8),
        *(pl.col(f).cast(pl.Float32).fill_null(nan) for f in features),
    )


def _pg_features(features: Sequence[str], names: Names) -> tuple[list[str], list[str]]:
    """Per feature, the element of ``real[]`` that holds it in each model version (reading
    only those elements is 3 x faster than the whole arrays), and the versions to bind."""
    columns: list[str] = []
    versions: list[str] = []
    for f in features:
        cases = [(v, n.index(f) + 1) for v, n in names.items() if f in n]
        columns.append(
            "CASE t.model_version "
            + " ".join(f"WHEN ? THEN t.features[{i}]" for _, i in cases)
            + f" END AS {_alias(f)}"
        )
        versions += [v for v, _ in cases]
    return columns, versions


def _pg_uri(url: str, schema: str | None) -> str:
    """``url`` with the store's schema first on the search path (libpq's ``options``)."""
    if not schema:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query) + [("options", f"-csearch_path={schema}")]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@contextlib.contextmanager
def _guard(db: SqlConnection) -> Iterator[None]:
    """ADBC's errors as ``StoreError`` naming the store (its password redacted)."""
    from adbc_driver_manager import Error

    try:
        yield
    except Error as exc:
        raise StoreError(
            f"store {redact(db.url)}: read transactions_enriched failed: {redact(str(exc))}; "
            "check the store URL and that the store is reachable"
        ) from exc
