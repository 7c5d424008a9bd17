"""Read and write access to the store for the dashboard: SQLite or PostgreSQL, one SQL dialect.

SQL is written once with ``?`` placeholders and translated for psycopg; every value is bound.
Connections are pooled and each call borrows one for itself, so Streamlit's script threads never
share a connection at the same time.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from fraudstream._redact import redact
from fraudstream.errors import StoreError
from fraudstream.sinks import open_store
from fraudstream.sinks._sqlconn import Dialect, parse_store_url

__all__ = ["Database", "Dialect"]

Row = tuple[Any, ...]
T = TypeVar("T")


class Database:
    """The store at ``url`` (``sqlite:///path`` or ``postgresql://…``, optional ``schema``).

    ``migrate`` runs the store's migrations (so the dashboard's indexes exist); the query
    methods never change the schema.
    """

    def __init__(self, url: str, *, schema: str | None = None, timeout_s: float = 10.0) -> None:
        self.schema = schema
        self.timeout_s = timeout_s
        self._sqlite: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._pg: ConnectionPool | None = None
        self.dialect, self.path, self.url = parse_store_url(url, "the dashboard needs")

    def __repr__(self) -> str:
        return f"Database({redact(self.url)!r}, schema={self.schema!r})"

    def migrate(self) -> None:
        """Open the store once the way the detector does: creates tables and indexes if missing."""
        store = open_store(self.url, schema=self.schema)
        store.open()
        store.close()

    def close(self) -> None:
        """Close every pooled connection."""
        while True:
            try:
                self._sqlite.get_nowait().close()
            except queue.Empty:
                break
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def _sqlite_connect(self) -> sqlite3.Connection:
        try:
            return self._sqlite.get_nowait()
        except queue.Empty:
            pass
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA cache_size=-32768")
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def _pool(self) -> ConnectionPool:
        if self._pg is None:
            options = f"-c search_path={self.schema}" if self.schema else ""
            self._pg = ConnectionPool(
                self.url,
                min_size=1,
                max_size=4,
                kwargs={"autocommit": True, "options": options},
                timeout=self.timeout_s,
                open=True,
            )
        return self._pg

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, psycopg.Error) as exc:
            raise StoreError(
                f"dashboard store {redact(self.url)}: {action} failed: {exc}; "
                "check that the store exists and the detector has opened it once"
            ) from exc

    def sql(self, text: str) -> str:
        """``text`` in this store's placeholder style."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one parameterised query."""
        with self._guard(f"query {text.split()[0:4]}"):
            if self.dialect == "sqlite":
                conn = self._sqlite_connect()
                try:
                    return conn.execute(text, tuple(params)).fetchall()
                finally:
                    self._sqlite.put(conn)
            with self._pool().connection() as pg:
                return pg.execute(self.sql(text), tuple(params)).fetchall()

    def chunks(
        self, text: str, params: Sequence[Any] = (), size: int = 100_000
    ) -> Iterator[list[Row]]:
        """The rows of one query, ``size`` at a time, never all in memory (a server-side
        cursor on PostgreSQL, a stepped cursor on SQLite)."""
        with self._guard(f"query {text.split()[0:4]}"):
            if self.dialect == "sqlite":
                conn = self._sqlite_connect()
                try:
                    cur = conn.execute(text, tuple(params))
                    while batch := cur.fetchmany(size):
                        yield batch
                finally:
                    self._sqlite.put(conn)
                return
            with (
                self._pool().connection() as pg,
                pg.transaction(),
                pg.cursor(name="fraudstream_chunks") as named,
            ):
                named.itersize = size
                named.execute(self.sql(text), tuple(params))
                while rows := named.fetchmany(size):
                    yield rows

    def one(self, text: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or ``None``."""
        found = self.rows(text, params)
        return found[0] if found else None

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; the number of rows it changed."""
        return self.execute_many(text, [params])

    def execute_many(self, text: str, params: Sequence[Sequence[Any]]) -> int:
        """Run a write statement once per parameter row, all in one transaction."""
        rows = [tuple(p) for p in params]

        def work(cur: Any) -> int:
            cur.executemany(self.sql(text), rows)
            return int(cur.rowcount)

        return self._transaction(f"write {text.split()[0:3]}", work)

    def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run several write statements in one transaction; the rows each one changed."""

        def work(cur: Any) -> list[int]:
            counts = []
            for text, params in statements:
                cur.execute(self.sql(text), tuple(params))
                counts.append(int(cur.rowcount))
            return counts

        return self._transaction(f"write {[t.split()[0] for t, _ in statements]}", work)

    def _transaction(self, action: str, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` inside one transaction: committed if it returns, else rolled back."""
        with self._guard(action):
            if self.dialect == "sqlite":
                conn = self._sqlite_connect()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(conn.cursor())
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()
                    return result
                finally:
                    self._sqlite.put(conn)
            with self._pool().connection() as pg, pg.transaction(), pg.cursor() as cur:
                return work(cur)

    def plain(self, column: str) -> str:
        """``column`` as an expression SQLite will not use an index for (``+column``).

        Steers SQLite's planner (which has no statistics) to the partial indexes when an
        equality or ``GROUP BY`` on the column would otherwise pick a full-table index.
        """
        return f"+{column}" if self.dialect == "sqlite" else column

    def bin_expr(self, column: str, bins: int) -> str:
        """SQL for ``floor(column * bins)`` as an integer (``column`` is trusted SQL)."""
        n = int(bins)
        if self.dialect == "sqlite":
            return f"CAST({column} * {n} AS INTEGER)"
        return f"CAST(floor({column} * {n}) AS INTEGER)"
