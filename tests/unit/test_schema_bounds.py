"""The documented bounds of PaySim and card records: accepted at each bound, rejected beyond it,
with a reason that names the field (Hypothesis generates the values)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fraudstream.schema import decode_card, decode_paysim
from fraudstream.schema._bounds import (
    MAX_AMOUNT,
    MAX_BALANCE,
    MAX_EVENT_TIME_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_STEP,
)

BROKER_MS = 1_733_000_000_000  # 2024-11-30


def paysim(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "step": 1,
        "type": "TRANSFER",
        "amount": 10.0,
        "nameOrig": "C1",
        "nameDest": "C2",
        "oldbalanceOrg": 10.0,
        "newbalanceOrig": 0.0,
        "oldbalanceDest": 0.0,
        "newbalanceDest": 10.0,
        "eventTimeMs": BROKER_MS,
    }
    return {**base, **fields}


def card(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customerId": "C1",
        "terminalId": "T1",
        "amount": 10.0,
        "eventTimeMs": BROKER_MS,
    }
    return {**base, **fields}


def one_paysim(record: dict[str, Any], broker_ms: int | None = BROKER_MS) -> str | None:
    """``None`` if the record is valid, else its reason."""
    raw = json.dumps(record, allow_nan=False).encode()
    good, _, invalid = decode_paysim([raw], None if broker_ms is None else [broker_ms])
    assert len(good) + len(invalid) == 1
    return invalid[0].reason if invalid else None


def one_card(record: dict[str, Any], broker_ms: int | None = BROKER_MS) -> str | None:
    raw = json.dumps(record, allow_nan=False).encode()
    good, _, invalid = decode_card([raw], None if broker_ms is None else [broker_ms])
    assert len(good) + len(invalid) == 1
    return invalid[0].reason if invalid else None


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
def test_amount_within_zero_and_max_amount(amount: float) -> None:
    reason = one_paysim(paysim(amount=amount))
    assert (reason is None) == (0.0 <= amount <= MAX_AMOUNT)
    if reason is not None:
        assert "$.amount" in reason
    assert (one_card(card(amount=amount)) is None) == (0.0 <= amount <= MAX_AMOUNT)


def test_amount_at_the_bounds_and_1e308() -> None:
    assert one_paysim(paysim(amount=MAX_AMOUNT)) is None
    assert one_paysim(paysim(amount=0.0)) is None
    assert "<= 1000000000000.0" in (one_paysim(paysim(amount=1e308)) or "")
    assert "$.amount" in (one_card(card(amount=1e308)) or "")


@given(
    st.sampled_from(["oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest"]), finite
)
def test_balances_within_zero_and_max_balance(field: str, value: float) -> None:
    reason = one_paysim(paysim(**{field: value}))
    assert (reason is None) == (0.0 <= value <= MAX_BALANCE)
    if reason is not None:
        assert f"$.{field}" in reason


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_step_within_zero_and_max_step(step: int) -> None:
    reason = one_paysim(paysim(step=step))
    assert (reason is None) == (0 <= step <= MAX_STEP)
    if reason is not None:
        assert "$.step" in reason


def test_step_of_2_63_is_invalid_not_an_overflow() -> None:
    assert "$.step" in (one_paysim(paysim(step=2**63)) or "")
    assert one_paysim(paysim(step=MAX_STEP)) is None


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_event_time_fixed_bounds_without_a_broker_timestamp(t: int) -> None:
    for reason in (one_paysim(paysim(eventTimeMs=t), None), one_card(card(eventTimeMs=t), None)):
        assert (reason is None) == (0 <= t < MAX_EVENT_TIME_MS)
        if reason is not None:
            assert "eventTimeMs" in reason


@given(st.integers(min_value=0, max_value=MAX_EVENT_TIME_MS - 1), st.integers(1, 2**42))
def test_event_time_at_most_a_day_ahead_of_the_broker_timestamp(t: int, broker_ms: int) -> None:
    ok = t - broker_ms <= MAX_FUTURE_SKEW_MS
    for reason in (
        one_paysim(paysim(eventTimeMs=t), broker_ms),
        one_card(card(eventTimeMs=t), broker_ms),
    ):
        assert (reason is None) == ok
        if not ok:
            assert "ahead of the record's broker timestamp" in (reason or "")


def test_event_time_skew_at_the_bound_and_without_broker_time() -> None:
    assert one_paysim(paysim(eventTimeMs=BROKER_MS + MAX_FUTURE_SKEW_MS)) is None
    assert "h ahead" in (one_paysim(paysim(eventTimeMs=BROKER_MS + MAX_FUTURE_SKEW_MS + 1)) or "")
    # no broker timestamp (-1): only the fixed bound; no eventTimeMs: the broker's time is used
    assert one_paysim(paysim(eventTimeMs=BROKER_MS * 2), -1) is None
    assert one_paysim({k: v for k, v in paysim().items() if k != "eventTimeMs"}) is None
    # a history replayed from the epoch (the simulator's files) is accepted
    assert one_paysim(paysim(eventTimeMs=0)) is None


def test_microseconds_nanoseconds_and_year_2100_are_named() -> None:
    us = one_paysim(paysim(eventTimeMs=1_733_000_000_000_000)) or ""
    assert "eventTimeMs 1733000000000000 looks like microseconds" in us
    assert "looks like nanoseconds" in (one_card(card(eventTimeMs=1_733_000_000_000_000_000)) or "")
    assert "2100 or later" in (one_paysim(paysim(eventTimeMs=MAX_EVENT_TIME_MS), None) or "")
    assert "$.eventTimeMs" in (one_paysim(paysim(eventTimeMs=2**63)) or "")


ids = st.text(min_size=0, max_size=2 * MAX_ID_CHARS)


@given(st.sampled_from(["nameOrig", "nameDest", "txId", "fraudScenario"]), ids)
def test_paysim_text_is_1_to_64_printable_characters(field: str, text: str) -> None:
    reason = one_paysim(paysim(**{field: text}))
    ok = 1 <= len(text) <= MAX_ID_CHARS and text.isprintable()
    assert (reason is None) == ok, (text, reason)
    if reason is not None:
        assert field in reason


@given(st.sampled_from(["customerId", "terminalId", "txId", "fraudScenario"]), ids)
def test_card_text_is_1_to_64_printable_characters(field: str, text: str) -> None:
    reason = one_card(card(**{field: text}))
    ok = 1 <= len(text) <= MAX_ID_CHARS and text.isprintable()
    assert (reason is None) == ok, (text, reason)


@given(st.sampled_from(["\x00", "\x1f", "\x7f", "\x85", "\u202e", "\u2066", "\ufeff"]))
def test_control_and_format_characters_are_named(char: str) -> None:
    reason = one_paysim(paysim(nameOrig=f"C1{char}x")) or ""
    assert f"nameOrig contains the non-printable character U+{ord(char):04X} at index 2" in reason


def test_printable_non_ascii_and_escaped_text_is_accepted() -> None:
    assert one_paysim(paysim(nameOrig="zahlung-ü-😀-支付", nameDest='say "hi"\\')) is None


def test_only_the_bad_records_of_a_batch_are_rejected() -> None:
    values = [
        json.dumps(paysim(nameOrig=f"C{i}" + ("\x00" if i % 3 == 0 else ""))).encode()
        for i in range(30)
    ]
    good, positions, invalid = decode_paysim(values, [BROKER_MS] * 30)
    assert positions == [i for i in range(30) if i % 3]
    assert [v.index for v in invalid] == list(range(0, 30, 3))
    assert [r.nameOrig for r in good] == [f"C{i}" for i in positions]


@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_invalid_never_an_exception(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + ("1" if opener != "[" else "") + closer * depth
    raw = json.dumps(paysim())[:-1] + f', "extra": {nested}}}'
    good, _, invalid = decode_paysim([raw.encode()], [BROKER_MS])
    assert len(good) + len(invalid) == 1
    if invalid:
        assert "nested too deeply" in invalid[0].reason
    as_amount = raw.replace('"amount": 10.0', f'"amount": {nested}')
    assert "$.amount" in decode_paysim([as_amount.encode()])[2][0].reason
