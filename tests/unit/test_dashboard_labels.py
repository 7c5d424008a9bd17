"""The fraud-labels message: round trip, validation, verdict mapping."""

from __future__ import annotations

import json

import pytest

from fraudstream.errors import SchemaError
from fraudstream.schema import (
    LabelMessage,
    decode_label,
    encode_label,
    label_from_status,
    label_id_of,
)


def test_round_trip_and_field_names() -> None:
    msg = LabelMessage(
        tx_id="t-1", alert_id="t-1", account="C1", label=1, analyst="ana", labelled_at_ms=17
    )
    raw = encode_label(msg)
    assert decode_label(raw) == msg
    assert json.loads(raw) == {
        "tx_id": "t-1",
        "alert_id": "t-1",
        "account": "C1",
        "counterparty": None,
        "tx_time_ms": None,
        "label": 1,
        "source": "analyst",
        "analyst": "ana",
        "labelled_at_ms": 17,
        "reason": None,
        "label_id": label_id_of("t-1", 1, "analyst", 17),
    }


def test_minimal_chargeback_label_decodes() -> None:
    msg = decode_label(
        b'{"tx_id":"x","account":"C2","label":0,"labelled_at_ms":5,"source":"chargeback"}'
    )
    assert msg.alert_id is None and msg.analyst is None and msg.label == 0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"tx_id":"x","account":"C","label":2,"labelled_at_ms":1}', "label"),
        (b'{"account":"C","label":1,"labelled_at_ms":1}', "tx_id"),
        (b"not json", "not JSON"),
    ],
)
def test_invalid_messages_name_the_fault(raw: bytes, fragment: str) -> None:
    with pytest.raises(SchemaError, match=fragment):
        decode_label(raw)


def test_label_from_status() -> None:
    assert label_from_status("confirmed_fraud") == 1
    assert label_from_status("false_positive") == 0
    with pytest.raises(SchemaError, match="not a verdict"):
        label_from_status("open")
