"""Everything a running API holds: the store, the Kafka channel, keys, the record format, metrics.

:func:`build_service` makes one from :class:`~fraudstream.config.Settings`; the app
(:func:`~fraudstream.api.create_app`) starts it with its event loop and closes it at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudstream.api._channel import DecisionChannel
from fraudstream.api._decide import Decider
from fraudstream.api._keys import KeyChecker
from fraudstream.api._metrics import ApiMetrics
from fraudstream.api._reads import SqliteReader, stored_decision
from fraudstream.api._records import PAYSIM_FORMAT, RecordFormat, card_format
from fraudstream.config import Settings
from fraudstream.dashboard import Database
from fraudstream.errors import FraudstreamError, ModelError
from fraudstream.features import CardExtras
from fraudstream.model import latest_bundle
from fraudstream.model._bundle import BUNDLE_FILE
from fraudstream.schema._label_files import TxFacts
from fraudstream.sinks._postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from fraudstream.sinks._sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS

__all__ = ["ApiService", "build_service", "serving_format", "serving_model"]

log = logging.getLogger(__name__)

#: Store reads run on this many threads (a hung store never blocks the event loop).
_READ_THREADS = 16
#: How long a decision's SQLite lookup (on the event loop) may wait for a lock.
_SQLITE_BUSY_S = 0.02
#: How long a readiness probe waits for the broker and for the store.
_PROBE_S = 2.0


def _manifest(models_dir: Path) -> dict[str, Any]:
    path = latest_bundle(models_dir)
    if path is None:
        raise ModelError(
            f"no promoted model bundle under {models_dir}: the API answers with the detectors' "
            "model; run `fraudstream train --promote` or `fraudstream model promote VERSION`"
        )
    manifest: dict[str, Any] = json.loads((path / BUNDLE_FILE).read_text())
    return manifest


def serving_model(models_dir: Path) -> tuple[str, str]:
    """``(version, mode)`` of the promoted bundle, read from its manifest (no model loaded)."""
    manifest = _manifest(models_dir)
    return str(manifest["version"]), str(manifest["mode"])


def serving_format(models_dir: Path) -> RecordFormat:
    """The records the promoted bundle's detectors read: PaySim's, or the card format with the
    extra fields the bundle reads (its manifest's ``extras``)."""
    manifest = _manifest(models_dir)
    if manifest["mode"] != "card":
        return PAYSIM_FORMAT
    fields = CardExtras.from_dicts(manifest.get("extras", [])).fields
    return card_format([(f.name, f.kind) for f in fields])


@dataclass
class ApiService:
    """The API's parts (built by :func:`build_service`, started by the app)."""

    db: Database
    #: the decisions' lookups: ``db`` itself, or for SQLite one connection whose reads give up
    #: quickly (they run on the event loop: a WAL reader never waits for the writer)
    lookups: Database | SqliteReader
    channel: DecisionChannel
    keys: KeyChecker
    record_format: RecordFormat
    models_dir: Path
    labels_topic: str
    budget_ms: int = 100
    fallback: str = "review"
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="api-store")
    )
    decider: Decider | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect to Kafka and start reading decisions."""
        self.channel.start(loop, extra_topics=[self.labels_topic])
        inline = isinstance(self.lookups, SqliteReader)
        self.decider = Decider(
            self.channel,
            lambda tx_id: stored_decision(self.lookups, tx_id),
            executor=None if inline else self.executor,
            metrics=self.metrics,
            budget_ms=self.budget_ms,
            fallback=self.fallback,  # type: ignore[arg-type]  # validated by ApiSettings
        )

    def close(self) -> None:
        self.channel.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.db.close()
        if isinstance(self.lookups, SqliteReader):
            self.lookups.close()

    async def run(self, func: Any, *args: Any, timeout_s: float = _PROBE_S) -> Any:
        """``func(*args)`` on the store's threads, at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.executor, func, *args), timeout_s)

    def facts(self, tx_ids: list[str]) -> Mapping[str, TxFacts]:
        """``tx_id -> (account, counterparty, event time)`` of stored transactions."""
        rows = self.db.rows(
            "SELECT tx_id, account, counterparty, event_time_ms FROM transactions_enriched "
            f"WHERE tx_id IN ({', '.join('?' * len(tx_ids))})",
            tx_ids,
        )
        return {str(t): (str(a), str(c), int(e)) for t, a, c, e in rows}

    async def readiness(self) -> dict[str, Any]:
        """The broker, the store and the model, each ``ok`` or why not."""
        checks = {
            "broker": self._probe(self.channel.probe),
            "store": self._probe(self.db.one, "SELECT 1"),
            "model": self._probe(serving_model, self.models_dir),
        }
        out: dict[str, Any] = {}
        for name, check in checks.items():
            out[name] = await check
        if out["broker"] == "ok" and not self.channel.ready.is_set():
            out["broker"] = "the decisions topic is not positioned yet"
        out["ready"] = all(v == "ok" for v in out.values())
        return out

    async def _probe(self, func: Any, *args: Any) -> str:
        try:
            await self.run(func, *args)
        except TimeoutError:
            return f"no answer within {_PROBE_S:g} s"
        except (FraudstreamError, OSError, ValueError) as exc:
            return str(exc)
        return "ok"


def _migrate(db: Database) -> None:
    """Run the store's migrations unless it is current already, which is checked by a read: a
    migration takes the write lock, which a running detector may hold (SQLite refused it)."""
    latest = len(SQLITE_MIGRATIONS if db.dialect == "sqlite" else POSTGRES_MIGRATIONS)
    try:
        row = db.one("SELECT max(version) FROM schema_migrations")
    except FraudstreamError:  # a new store: no table yet
        row = None
    if row is None or row[0] is None or int(row[0]) < latest:
        db.migrate()


def build_service(settings: Settings, client: Mapping[str, Any]) -> ApiService:
    """The API's parts from ``settings``, on the Kafka cluster of the librdkafka ``client``
    settings; the store is migrated (the keys' table) and the promoted bundle read."""
    record_format = serving_format(settings.models_dir)
    db = Database(settings.store_url(), schema=settings.store.pg_schema)
    _migrate(db)
    lookups: Database | SqliteReader = db
    if db.dialect == "sqlite":
        lookups = SqliteReader(db.path, busy_timeout_s=_SQLITE_BUSY_S)
    api = settings.api
    channel = DecisionChannel(
        client,
        transactions=settings.topics.transactions,
        decisions=api.decisions_topic,
        instance=uuid.uuid4().hex[:12],
        partitions=settings.kafka.partitions,
        decisions_partitions=api.decisions_partitions,
        linger_ms=api.linger_ms,
        fetch_wait_ms=api.fetch_wait_ms,
        pending_ttl_s=api.pending_ttl_s,
        reply_host=api.reply_host if api.direct_replies else None,
        reply_port=api.reply_port,
        advertised_host=api.reply_advertised_host,
    )
    metrics = ApiMetrics()
    wait, paths = metrics.decision_wait, metrics.answers

    def on_answer(seconds: float, path: str) -> None:
        wait.observe(seconds)
        paths.labels(path=path).inc()

    channel.on_answer = on_answer
    return ApiService(
        metrics=metrics,
        db=db,
        lookups=lookups,
        channel=channel,
        keys=KeyChecker(db, cache_s=api.key_cache_s),
        record_format=record_format,
        models_dir=settings.models_dir,
        labels_topic=settings.topics.labels,
        budget_ms=api.budget_ms,
        fallback=api.fallback_decision,
    )
