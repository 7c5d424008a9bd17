"""One connection to the store, SQLite or PostgreSQL, for small transactional work (rules and
lists): SQL written once with ``?`` placeholders, every value bound, errors as ``StoreError``.

Not for the detector's hot path (the stores batch that); one connection, one thread at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal

import psycopg
from psycopg import sql as pgsql

from fraudstream._redact import redact
from fraudstream.errors import ConfigError, StoreError
from fraudstream.sinks._store import open_store

__all__ = ["Dialect", "Row", "SqlConnection", "Tx", "parse_store_url"]

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]

_SQLITE: Final = "sqlite:///"
_POSTGRES: Final = ("postgresql://", "postgres://", "postgresql+")


def parse_store_url(url: str, needs: str) -> tuple[Dialect, str, str]:
    """``(dialect, SQLite path or "", URL for the driver)`` of a store URL; ``needs`` starts
    the error for a SQLite URL without a file (e.g. "the dashboard needs")."""
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE) :]
        if not path or path == ":memory:":
            raise ConfigError(f"{needs} a store file, not {url!r}")
        return "sqlite", path, url
    if url.startswith(_POSTGRES):
        return "postgresql", "", "postgresql://" + url.split("://", 1)[-1]
    raise ConfigError(
        f"unsupported store URL {redact(url)!r}; use sqlite:///path.db or postgresql://…"
    )


class Tx:
    """The statements of one open transaction (see :meth:`SqlConnection.transaction`)."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cur = cursor
        self._dialect = dialect

    def _sql(self, text: str) -> str:
        return text if self._dialect == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one query."""
        self._cur.execute(self._sql(text), tuple(params))
        return list(self._cur.fetchall())

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        self._cur.execute(self._sql(text), tuple(params))
        return int(self._cur.rowcount)

    def execute_many(self, text: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""
        if params:
            self._cur.executemany(self._sql(text), [tuple(p) for p in params])


class SqlConnection:
    """The store at ``url`` (``sqlite:///path`` or ``postgresql://…``, in ``schema`` if given).

    ``open`` runs the store's migrations (as the detector does) and connects; a PostgreSQL
    connection that broke is replaced on the next call. Reads outside :meth:`transaction` see
    the latest committed state.
    """

    def __init__(self, url: str, *, schema: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url
        self.schema = schema
        self.timeout_s = timeout_s
        self.dialect: Dialect
        self._conn: Any = None
        self.dialect, self.path, self.url = parse_store_url(url, "rules and lists need")

    def __repr__(self) -> str:
        return f"SqlConnection({redact(self.url)!r}, schema={self.schema!r})"

    def open(self) -> None:
        """Migrate the store (creating it if new) and connect; a no-op when open."""
        if self._conn is not None:
            return
        store = open_store(self.url, schema=self.schema)
        store.open()
        store.close()
        self._connect()

    def _connect(self) -> Any:
        with self.guard("connect"):
            if self.dialect == "sqlite":
                self._conn = sqlite3.connect(
                    self.path, timeout=self.timeout_s, isolation_level=None
                )
            else:
                options = f"-csearch_path={self.schema}" if self.schema else ""
                self._conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    options=options,
                    connect_timeout=max(1, round(self.timeout_s)),
                )
        return self._conn

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None:
            raise StoreError(f"store {redact(self.url)} is not open; call open() first")
        if self.dialect == "postgresql" and (conn.closed or conn.broken):
            conn.close()
            conn = self._connect()
        return conn

    def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Turn the driver's errors into ``StoreError`` naming ``action``."""
        try:
            yield
        except (sqlite3.Error, psycopg.Error) as exc:
            raise StoreError(
                f"store {redact(self.url)}: {action} failed: {type(exc).__name__}: {exc}".rstrip()
                + "; check the store URL and that the store is reachable"
            ) from exc

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one query, outside any transaction."""
        with self.guard(f"query {' '.join(text.split()[:4])}"):
            conn = self._connection()
            cur = conn.cursor()
            try:
                return Tx(cur, self.dialect).rows(text, params)
            finally:
                cur.close()

    @contextmanager
    def transaction(self, action: str, lock_table: str) -> Iterator[Tx]:
        """One transaction, committed if the block returns, else rolled back.

        Writers of ``lock_table`` are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a
        table lock readers do not wait for), so reading the latest version and writing the next
        cannot interleave with another writer, and versions commit in order.
        """
        with self.guard(action):
            conn = self._connection()
            if self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(conn.cursor(), self.dialect)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
                return
            with conn.transaction(), conn.cursor() as cur:
                lock = "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE"
                cur.execute(pgsql.SQL(lock).format(pgsql.Identifier(lock_table)))
                yield Tx(cur, self.dialect)
