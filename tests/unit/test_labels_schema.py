"""The fraud-labels record: round trip, label_id, bounds, malformed input with a reason, and the
dashboard's messages from before the extension."""

from __future__ import annotations

import json

import pytest

from fraudstream.errors import SchemaError
from fraudstream.schema import (
    LABEL_SOURCES,
    SOURCE_PRECEDENCE,
    LabelMessage,
    decode_label,
    decode_labels,
    encode_label,
    label_id_of,
)
from fraudstream.schema._bounds import MAX_EVENT_TIME_MS, MAX_FUTURE_SKEW_MS, MAX_ID_CHARS


def _raw(**fields: object) -> bytes:
    base: dict[str, object] = {"tx_id": "t-1", "label": 1, "labelled_at_ms": 1_700_000_000_000}
    return json.dumps({**base, **fields}).encode()


@pytest.mark.parametrize("source", LABEL_SOURCES)
def test_round_trip_every_source(source: str) -> None:
    msg = LabelMessage(
        tx_id="t-9",
        label=0,
        labelled_at_ms=123,
        account="C1",
        source=source,  # type: ignore[arg-type]
        reason="customer confirmed the purchase",
    )
    assert msg.label_id == label_id_of("t-9", 0, source, 123)
    assert decode_label(encode_label(msg)) == msg


def test_label_id_is_deterministic_and_depends_on_each_part() -> None:
    base = label_id_of("t-1", 1, "chargeback", 5)
    assert base == label_id_of("t-1", 1, "chargeback", 5) and len(base) == 32
    others = {
        label_id_of("t-2", 1, "chargeback", 5),
        label_id_of("t-1", 0, "chargeback", 5),
        label_id_of("t-1", 1, "dispute", 5),
        label_id_of("t-1", 1, "chargeback", 6),
    }
    assert base not in others and len(others) == 4
    # account, reason, analyst do not change the verdict's identity
    a = LabelMessage(tx_id="t-1", label=1, labelled_at_ms=5, source="chargeback", account="A")
    b = LabelMessage(tx_id="t-1", label=1, labelled_at_ms=5, source="chargeback", reason="r")
    assert a.label_id == b.label_id == base


def test_dashboard_message_of_before_the_extension_still_decodes() -> None:
    old = (
        b'{"tx_id":"t-1","alert_id":"t-1","account":"C1","label":1,'
        b'"source":"analyst","analyst":"ana","labelled_at_ms":17}'
    )
    msg = decode_label(old)
    assert (msg.tx_id, msg.account, msg.analyst, msg.source) == ("t-1", "C1", "ana", "analyst")
    assert msg.reason is None and msg.label_id == label_id_of("t-1", 1, "analyst", 17)
    no_source = decode_label(b'{"tx_id":"x","account":"C","label":0,"labelled_at_ms":1}')
    assert no_source.source == "analyst"


def test_bounds_accepted_at_the_limit() -> None:
    labels, positions, invalid = decode_labels(
        [
            _raw(tx_id="t" * MAX_ID_CHARS, account="a" * MAX_ID_CHARS),
            _raw(labelled_at_ms=0),
            _raw(labelled_at_ms=MAX_EVENT_TIME_MS - 1),
            _raw(reason="r" * 500),
        ]
    )
    assert invalid == [] and positions == [0, 1, 2, 3] and len(labels) == 4


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (_raw(tx_id="t" * (MAX_ID_CHARS + 1)), "tx_id"),
        (_raw(tx_id=""), "tx_id"),
        (_raw(account="C\u0000"), "account contains the non-printable character U+0000"),
        (_raw(reason="a\u202eb"), "reason contains the non-printable character U+202E"),
        (_raw(reason="r" * 501), "reason"),
        (_raw(label=2), "label"),
        (_raw(source="bank"), "source"),
        (_raw(labelled_at_ms=-1), "labelled_at_ms"),
        (_raw(labelled_at_ms=MAX_EVENT_TIME_MS), "in 2100 or later"),
        (_raw(labelled_at_ms=1_700_000_000_000_000), "looks like microseconds"),
        (_raw(label_id="0" * 32), "does not match the label's content"),
        (_raw(label_id="not-hex"), "label_id"),
        (b'{"label":1,"labelled_at_ms":1}', "tx_id"),
        (b"not json", "label message is not JSON"),
        (None, "tombstone"),
    ],
)
def test_malformed_label_is_invalid_with_a_reason(raw: bytes | None, fragment: str) -> None:
    labels, positions, invalid = decode_labels([_raw(), raw, _raw(tx_id="t-3")])
    assert [m.tx_id for m in labels] == ["t-1", "t-3"] and positions == [0, 2]
    assert [v.index for v in invalid] == [1]
    assert fragment in invalid[0].reason
    if raw is not None:
        with pytest.raises(SchemaError, match="label"):
            decode_label(raw)


def test_labelled_at_too_far_ahead_of_the_broker_timestamp() -> None:
    at = 1_700_000_000_000
    values = [_raw(labelled_at_ms=at), _raw(labelled_at_ms=at + MAX_FUTURE_SKEW_MS + 1)]
    labels, positions, invalid = decode_labels(values, broker_ts_ms=[at, at])
    assert positions == [0] and [v.index for v in invalid] == [1]
    assert "ahead of the record's broker timestamp" in invalid[0].reason


def test_source_precedence_is_documented_order() -> None:
    ranked = sorted(SOURCE_PRECEDENCE, key=SOURCE_PRECEDENCE.__getitem__, reverse=True)
    assert ranked == ["chargeback", "dispute", "analyst", "rule", "simulator"]
    assert set(ranked) == set(LABEL_SOURCES)
