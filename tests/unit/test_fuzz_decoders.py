"""Fuzz of every decoder the detector runs on a consumed topic (PaySim and card transactions,
labels): whatever the bytes, a value is either decoded within the documented bounds or reported
invalid with a printable reason, never an exception; positions map back in mixed batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.features import LabelBook
from fraudstream.schema import (
    KINDS,
    LABEL_SOURCES,
    CardRecord,
    Invalid,
    LabelMessage,
    PaySimRecord,
    card_to_batch,
    decode_card,
    decode_labels,
    decode_paysim,
    label_id_of,
    paysim_to_batch,
)
from fraudstream.schema._bounds import (
    MAX_AMOUNT,
    MAX_BALANCE,
    MAX_EVENT_TIME_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_STEP,
)
from tests._hostile import BROKER_MS, TOKENS, VALID, VALUES, any_value, obj, token

Decoded = tuple[list[Any], list[int], list[Invalid]]
DECODERS: dict[str, Callable[[Sequence[bytes | None], Sequence[int] | None], Decoded]] = {
    "paysim": decode_paysim,
    "card": decode_card,
    "labels": decode_labels,
}
#: a reason is a DLQ header: short whatever the value quoted
MAX_REASON = 600
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
broker_ts = st.sampled_from([BROKER_MS, -1, 0, 1, 2**41])


def _id(value: str | None, optional: bool = True) -> None:
    if value is None:
        assert optional
        return
    assert 1 <= len(value) <= 64 and value.isprintable(), repr(value)


def _time(t: int | None, ts: int | None) -> None:
    if t is None:
        return
    assert 0 <= t < MAX_EVENT_TIME_MS
    if ts is not None and ts > 0:
        assert t - ts <= MAX_FUTURE_SKEW_MS


def _money(v: float | None, top: float) -> None:
    assert v is None or (math.isfinite(v) and 0.0 <= v <= top), v


def check_paysim(r: PaySimRecord, ts: int | None) -> None:
    assert 0 <= r.step <= MAX_STEP and r.type in KINDS
    _money(r.amount, MAX_AMOUNT)
    for v in (r.oldbalanceOrg, r.newbalanceOrig, r.oldbalanceDest, r.newbalanceDest):
        _money(v, MAX_BALANCE)
    _id(r.nameOrig, optional=False)
    _id(r.nameDest, optional=False)
    _id(r.txId)
    _id(r.fraudScenario)
    assert r.isFraud in (None, 0, 1) and r.isFlaggedFraud in (0, 1)
    _time(r.eventTimeMs, ts)


def check_card(r: CardRecord, ts: int | None) -> None:
    _id(r.customerId, optional=False)
    _id(r.terminalId, optional=False)
    _money(r.amount, MAX_AMOUNT)
    _time(r.eventTimeMs, ts)
    _id(r.txId)
    _id(r.fraudScenario)
    assert r.isFraud in (None, 0, 1)


def check_label(r: LabelMessage, ts: int | None) -> None:
    for v in (r.account, r.counterparty, r.alert_id, r.analyst):
        _id(v)
    _id(r.tx_id, optional=False)
    assert r.label in (0, 1) and r.source in LABEL_SOURCES
    _time(r.labelled_at_ms, ts)
    _time(r.tx_time_ms, None)
    assert r.reason is None or (len(r.reason) <= 500 and r.reason.isprintable())
    assert r.label_id == label_id_of(r.tx_id, r.label, r.source, r.labelled_at_ms)


CHECKS: dict[str, Callable[[Any, int | None], None]] = {
    "paysim": check_paysim,
    "card": check_card,
    "labels": check_label,
}


def check_reason(reason: str) -> None:
    assert reason and reason.isprintable(), repr(reason)
    assert len(reason) <= MAX_REASON
    reason.encode()  # a DLQ header: no lone surrogate


def use(fmt: str, records: list[Any]) -> None:
    """What the detector does next with decoded records: the canonical batch, the label book."""
    ids = [f"t{i}" for i in range(len(records))]
    if fmt == "paysim":
        batch = paysim_to_batch(records, ids, [BROKER_MS] * len(records))
    elif fmt == "card":
        batch = card_to_batch(records, ids)
    else:
        LabelBook().add(records)
        return
    assert len(batch) == len(records)
    assert (batch.event_time_ms >= 0).all() and (batch.event_time_ms < MAX_EVENT_TIME_MS).all()


def check_decoded(
    fmt: str, values: Sequence[bytes | None], ts: Sequence[int] | None, got: Decoded
) -> None:
    """Every value decoded within bounds or invalid with a reason, once, at its position."""
    records, positions, invalid = got
    assert len(records) == len(positions)
    bad = [v.index for v in invalid]
    assert positions == sorted(positions) and bad == sorted(bad)
    assert sorted(positions + bad) == list(range(len(values)))
    for v in invalid:
        check_reason(v.reason)
    for r, i in zip(records, positions, strict=True):
        CHECKS[fmt](r, None if ts is None else ts[i])
    use(fmt, records)


@pytest.mark.parametrize("fmt", DECODERS)
@FUZZ
@given(data=st.data())
def test_any_batch_decodes_or_is_reported_and_positions_map_back(
    fmt: str, data: st.DataObject
) -> None:
    values = data.draw(st.lists(any_value(fmt), min_size=1, max_size=8), label="values")
    ts = data.draw(st.none() | st.lists(broker_ts, min_size=len(values), max_size=len(values)))
    decode = DECODERS[fmt]
    got = decode(values, ts)
    check_decoded(fmt, values, ts, got)
    # each value alone: the same verdict, record or reason as in the batch
    records, positions, invalid = got
    by_position = dict(zip(positions, records, strict=True))
    reasons = {v.index: v.reason for v in invalid}
    for i, value in enumerate(values):
        alone = decode([value], None if ts is None else [ts[i]])
        if alone[0]:
            assert by_position[i] == alone[0][0]
        else:
            assert reasons[i] == alone[2][0].reason


@pytest.mark.parametrize("fmt", DECODERS)
@FUZZ
@given(data=st.data())
def test_valid_records_decode_to_themselves(fmt: str, data: st.DataObject) -> None:
    fields = data.draw(VALID[fmt]())
    records, _, invalid = DECODERS[fmt]([obj([(k, token(v)) for k, v in fields.items()])], None)
    assert not invalid, invalid
    assert {k: getattr(records[0], k) for k in fields} == fields


FIELDS: dict[str, tuple[str, ...]] = {
    "paysim": PaySimRecord.__struct_fields__,
    "card": CardRecord.__struct_fields__,
    "labels": LabelMessage.__struct_fields__,
}


@pytest.mark.parametrize("fmt", DECODERS)
def test_every_corpus_token_in_every_field(fmt: str) -> None:
    """The fixed corpus, exhaustively: each nasty token in each field of a valid record (and
    as a duplicate key, and as an unknown field), plus the whole-value corpus."""
    base = {
        "paysim": {"step": 1, "type": "TRANSFER", "amount": 1.0, "nameOrig": "a", "nameDest": "b"},
        "card": {"customerId": "c", "terminalId": "t", "amount": 1.0, "eventTimeMs": BROKER_MS},
        "labels": {"tx_id": "t", "label": 1, "labelled_at_ms": BROKER_MS},
    }[fmt]
    values: list[bytes | None] = list(VALUES.values())
    for field in [*FIELDS[fmt], "unknownField"]:
        for raw in TOKENS.values():
            items = [(k, token(v)) for k, v in base.items() if k != field]
            values.append(obj([*items, (field, raw)]))
            if field in base:
                values.append(obj([(k, token(v)) for k, v in base.items()] + [(field, raw)]))
    ts = [BROKER_MS] * len(values)
    got = DECODERS[fmt](values, ts)
    check_decoded(fmt, values, ts, got)
    assert len(got[2]) > len(values) // 2  # most are hostile indeed


@pytest.mark.parametrize(
    ("field", "name", "expected"),
    [
        ("id", "overlong NUL (invalid UTF-8)", "not valid JSON: a string is not UTF-8"),
        ("id", "byte 0xff", "not valid JSON: a string is not UTF-8"),
        ("id", "encoded surrogate (CESU-8)", "not valid JSON: a string is not UTF-8"),
        ("id", "lone surrogate escape", "not valid JSON"),
        ("id", "10 KB id", "Expected `str` of length <= 64 - at `$."),
        ("id", "NUL", "contains the non-printable character U+0000 at index 1"),
        ("id", "RTL override", "contains the non-printable character U+202E"),
        ("amount", "1e308", "<= 1000000000000.0 - at `$.amount`"),
        ("amount", "NaN", "not valid JSON"),
        ("amount", "1e400", "Number out of range - at `$.amount`"),
        ("amount", "nested arrays 100k deep", "$.amount"),
    ],
)
def test_reasons_of_the_worst_values(field: str, name: str, expected: str) -> None:
    id_field = {"paysim": "nameOrig", "card": "customerId"}
    for fmt, id_name in id_field.items():
        items = {
            "step": b"1",
            "type": b'"DEBIT"',
            "nameOrig": b'"a"',
            "nameDest": b'"b"',
            "customerId": b'"c"',
            "terminalId": b'"t"',
            "eventTimeMs": b"1",
            "amount": b"1.0",
        }
        items[id_name if field == "id" else field] = TOKENS[name]
        _, _, invalid = DECODERS[fmt]([obj(list(items.items()))], None)
        assert len(invalid) == 1 and expected in invalid[0].reason, invalid


def test_a_quoted_hostile_value_is_escaped_and_cut_but_names_the_field() -> None:
    hostile = "\x00\u202e\n" + "y" * 100_000
    _, _, invalid = decode_paysim([obj([("type", token(hostile))])], None)
    (reason,) = [v.reason for v in invalid]
    check_reason(reason)
    assert reason.startswith("invalid PaySim transaction: Invalid enum value '\\x00\\u202e\\n")
    assert reason.endswith(" characters) - at `$.type`") and len(reason) < MAX_REASON
