"""The exception tree: one root, one subclass per module."""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "FraudstreamError",
    "KafkaError",
    "ModelError",
    "SchemaError",
    "SinkBackpressure",
    "StoreDataError",
    "StoreError",
]


class FraudstreamError(Exception):
    """Root of every error fraudstream raises on purpose."""


class ConfigError(FraudstreamError, ValueError):
    """Settings are missing or inconsistent."""


class SchemaError(FraudstreamError, ValueError):
    """A record does not match its source format."""


class BrokerError(FraudstreamError):
    """The embedded broker could not start or stop."""


class KafkaError(FraudstreamError):
    """A Kafka client operation failed (produce, consume, commit, admin)."""


class ModelError(FraudstreamError):
    """A model bundle is missing, invalid or cannot be trained."""


class StoreError(FraudstreamError):
    """The store (SQLite or PostgreSQL) failed: an outage unless it is a ``StoreDataError``."""


class StoreDataError(StoreError):
    """The store refused the data itself (a value it cannot keep, a constraint): retrying the
    same rows fails again. ``tx_ids`` names the rows when the store knows them."""

    def __init__(self, message: str, tx_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.tx_ids = tx_ids


class SinkBackpressure(FraudstreamError):
    """A sink cannot accept more data now; the caller must pause and retry."""
