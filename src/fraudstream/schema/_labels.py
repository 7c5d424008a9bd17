"""The ``fraud-labels`` topic's message: a verdict on one transaction (analyst or chargeback).

JSON, keyed by the account (so a label lands in the partition of the account's transactions)::

    {"tx_id": "t-1", "alert_id": "t-1", "account": "C123", "label": 1,
     "source": "analyst", "analyst": "ana", "labelled_at_ms": 1700000000000}

``label`` is 1 for fraud, 0 for a legitimate transaction. The same alert may be labelled more than
once (a republished or revised verdict): consumers keep the one with the latest ``labelled_at_ms``.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from fraudstream.errors import SchemaError

__all__ = [
    "LABEL_SOURCES",
    "VERDICTS",
    "LabelMessage",
    "decode_label",
    "encode_label",
    "label_from_status",
]

#: Where a label comes from.
LABEL_SOURCES: Final = ("analyst", "chargeback")

#: Alert statuses that are verdicts (``fraud_alerts.status`` besides ``open``).
VERDICTS: Final = ("confirmed_fraud", "false_positive")
_encoder = msgspec.json.Encoder()


class LabelMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A verdict on one transaction; ``alert_id`` is ``None`` for labels without an alert."""

    tx_id: str
    account: str
    label: Literal[0, 1]
    labelled_at_ms: int
    alert_id: str | None = None
    source: Literal["analyst", "chargeback"] = "analyst"
    analyst: str | None = None


_decoder = msgspec.json.Decoder(LabelMessage)


def encode_label(message: LabelMessage) -> bytes:
    """The message's JSON bytes."""
    return _encoder.encode(message)


def decode_label(value: bytes) -> LabelMessage:
    """Parse a ``fraud-labels`` value; ``SchemaError`` names the field at fault."""
    try:
        return _decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise SchemaError(f"invalid label message: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise SchemaError(f"label message is not JSON: {exc}") from exc


def label_from_status(status: str) -> Literal[0, 1]:
    """The label of an alert status: ``confirmed_fraud`` → 1, ``false_positive`` → 0."""
    if status == "confirmed_fraud":
        return 1
    if status == "false_positive":
        return 0
    raise SchemaError(f"alert status {status!r} is not a verdict; use one of {VERDICTS}")
