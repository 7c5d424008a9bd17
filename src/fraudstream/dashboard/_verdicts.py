"""The only way the dashboard writes a verdict: the user's role checked, the action audited.

:func:`store_verdict` stores an analyst's verdict on an alert (with its audit entry, in one
transaction) and :func:`publish_verdicts` publishes stored verdicts as labels; both refuse
with :class:`~fraudstream.dashboard._access.AccessDenied` unless the store says the user is an
analyst or an admin. The verdict is signed by that user's name, never by a typed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fraudstream.dashboard._access import User, audit_statement, require
from fraudstream.dashboard._db import Database
from fraudstream.dashboard._kafka import publish_labels
from fraudstream.dashboard._queries import AlertRow, get_alert
from fraudstream.errors import StoreError
from fraudstream.schema import VERDICTS

__all__ = ["publish_verdicts", "store_verdict"]


def store_verdict(
    db: Database, user: User | None, alert_id: str, status: str, at_ms: int
) -> AlertRow:
    """Store ``user``'s verdict (``confirmed_fraud`` / ``false_positive``) on an alert.

    Raises ``AccessDenied`` (audited) unless ``user`` is an analyst or admin in the store, and
    ``StoreError`` for an unknown verdict or alert.
    """
    if status not in VERDICTS:
        raise StoreError(f"verdict {status!r} is not one of {VERDICTS}")
    signer = require(db, user, "analyst", f"verdict on alert {alert_id}")
    if get_alert(db, alert_id) is None:
        raise StoreError(f"alert {alert_id!r} is not in the store; reload the queue")
    db.execute_all(
        [
            (
                "UPDATE fraud_alerts SET status = ?, analyst = ?, reviewed_at_ms = ? "
                "WHERE alert_id = ?",
                (status, signer.name, at_ms, alert_id),
            ),
            audit_statement(signer.name, "verdict stored", alert_id, status, at_ms),
        ]
    )
    alert = get_alert(db, alert_id)
    assert alert is not None  # alerts are never deleted
    return alert


def publish_verdicts(
    db: Database,
    user: User | None,
    client: Mapping[str, Any],
    topic: str,
    alert_ids: Sequence[str],
    *,
    partitions: int = 4,
    timeout_s: float = 5.0,
) -> list[AlertRow]:
    """Publish the stored verdicts of ``alert_ids`` as labels on ``topic``; the alerts published.

    Raises ``AccessDenied`` (audited) unless ``user`` is an analyst or admin in the store, and
    ``KafkaError`` if the broker does not take them (the verdicts stay stored).
    """
    signer = require(db, user, "analyst", f"publish {len(alert_ids)} label(s)")
    alerts = [a for a in (get_alert(db, aid) for aid in alert_ids) if a is not None]
    alerts = [a for a in alerts if a.status in VERDICTS]
    publish_labels(client, topic, alerts, partitions=partitions, timeout_s=timeout_s)
    if alerts:
        db.execute_all(
            [audit_statement(signer.name, "label published", a.alert_id, a.status) for a in alerts]
        )
    return alerts
