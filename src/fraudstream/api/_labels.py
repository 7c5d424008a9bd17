"""``POST /v1/labels``: a chargeback or dispute verdict onto the labels topic.

The body is the labels topic's own message (``schema.LabelMessage``), validated by its decoder;
``labelled_at_ms`` defaults to now, and a time in the past is moved to now as ``labels import``
does (a running detector could not have known it earlier: docs/labels.md). A label without its
transaction's account, counterparty or time is completed from the store. Key = the account,
else the transaction id, as every label producer keys it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from fraudstream.api._records import InvalidRecord, field_of, struct_schema
from fraudstream.errors import SchemaError
from fraudstream.schema import LabelMessage, decode_label
from fraudstream.schema._label_files import TxFacts, complete_labels, incomplete, known_from

__all__ = ["label_key", "label_schema", "parse_label"]

Facts = Callable[[list[str]], Mapping[str, TxFacts]]


def parse_label(body: bytes, facts: Facts, now_ms: int | None = None) -> LabelMessage:
    """The label in ``body``, completed and dated; ``InvalidRecord`` names the field at fault."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        fields = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRecord(None, f"label message is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise InvalidRecord(None, "a label is a JSON object")
    fields.setdefault("labelled_at_ms", now)
    try:
        label = decode_label(msgspec.json.encode(fields))
    except SchemaError as exc:
        raise InvalidRecord(field_of(str(exc), LabelMessage), str(exc)) from exc
    (label,), _ = known_from([label], now)
    if incomplete(label):
        (label,), _ = complete_labels([label], facts([label.tx_id]))
    return label


def label_key(label: LabelMessage) -> bytes:
    """The label's Kafka key: its account, else its transaction id."""
    return (label.account if label.account is not None else label.tx_id).encode()


def label_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema of a label body, components)``: the message's, ``labelled_at_ms`` optional."""
    schema, components = struct_schema(LabelMessage)
    body = components["LabelMessage"]
    body["required"] = [f for f in body.get("required", []) if f != "labelled_at_ms"]
    body["properties"]["labelled_at_ms"]["description"] = (
        "when the verdict became known, ms since the epoch (default and earliest: now)"
    )
    return schema, components
