"""What every page shares: settings, the store, cached queries, Kafka settings and formatting."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from fraudstream.config import Settings
from fraudstream.dashboard import _queries
from fraudstream.dashboard._db import Database
from fraudstream.dashboard._kafka import Lag, consumer_lag

__all__ = [
    "cached",
    "database",
    "fmt_ms",
    "fmt_pct",
    "kafka_client",
    "lag",
    "now_ms",
    "settings",
]

T = TypeVar("T")

#: Lifetime of cached query results (read once per process: decorators need it at import).
_TTL_S = Settings().dashboard.cache_ttl_s

#: Colours used on every page: decisions and labels always look the same.
DECISION_COLOURS = {"allow": "#9aa5b1", "review": "#f0a202", "block": "#d1495b"}
LABEL_COLOURS = {"legitimate": "#4c78a8", "fraud": "#d1495b", "unknown": "#9aa5b1"}


def settings() -> Settings:
    """The settings of this dashboard process (environment, ``.env``, defaults)."""
    return _settings()


@st.cache_resource(show_spinner=False)
def _settings() -> Settings:
    return Settings()


@st.cache_resource(show_spinner=False)
def _database(url: str, schema: str | None) -> Database:
    db = Database(url, schema=schema)
    db.migrate()
    return db


def database() -> Database:
    """The store of the settings, migrated once per process."""
    s = settings()
    return _database(s.store_url(), s.store.pg_schema)


@st.cache_data(ttl=_TTL_S, show_spinner=False, max_entries=256)
def _cached(name: str, url: str, schema: str | None, args: tuple[Any, ...]) -> Any:
    fn: Callable[..., Any] = getattr(_queries, name)
    return fn(_database(url, schema), *args)


def cached(fn: Callable[..., T], *args: Any) -> T:
    """``fn(database(), *args)`` for a function of ``_queries``, cached for a short TTL."""
    s = settings()
    result: T = _cached(fn.__name__, s.store_url(), s.store.pg_schema, args)
    return result


def kafka_client() -> dict[str, Any]:
    """librdkafka settings: the configured cluster, else the embedded broker's address."""
    s = settings()
    servers = s.kafka.bootstrap_servers or f"127.0.0.1:{s.kafka.embedded_port}"
    return s.kafka.client_config(servers)


@st.cache_data(ttl=max(_TTL_S, 5.0), show_spinner=False)
def _lag(client_items: tuple[tuple[str, Any], ...], group: str, topic: str) -> Lag:
    return consumer_lag(dict(client_items), group, topic, timeout_s=1.5)


def lag() -> Lag:
    """The detector group's lag on the transactions topic (cached a few seconds)."""
    s = settings()
    items = tuple(sorted((k, str(v)) for k, v in kafka_client().items()))
    return _lag(items, s.detect.group_id, s.topics.transactions)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fmt_ms(ms: int | None) -> str:
    """A millisecond timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"
