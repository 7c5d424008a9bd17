"""Hostile message values for the fuzz tests: a fixed corpus of nasty JSON tokens and Hypothesis
strategies for arbitrary bytes, arbitrary JSON and mutations of valid records, per consumed
topic format (PaySim, card, labels).

A record is built as raw JSON text (``obj``), so a field can hold what no JSON encoder writes:
``NaN``, ``1e400``, a lone surrogate escape, invalid UTF-8, a duplicated key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from hypothesis import strategies as st

from fraudstream.schema import KINDS, LABEL_SOURCES, label_id_of
from fraudstream.schema._bounds import (
    MAX_AMOUNT,
    MAX_BALANCE,
    MAX_EVENT_TIME_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_STEP,
)

#: The broker timestamp the fuzzed records are judged against (2024-11-30).
BROKER_MS: Final = 1_733_000_000_000
DEEP: Final = 100_000  # nesting levels of the deepest values (msgspec's limit is far lower)

#: name → raw JSON token of a hostile field value
TOKENS: Final[dict[str, bytes]] = {
    "null": b"null",
    "true": b"true",
    "empty array": b"[]",
    "empty object": b"{}",
    "empty string": b'""',
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "1e308": b"1e308",
    "-1e308": b"-1e308",
    "1e400": b"1e400",
    "-0.0": b"-0.0",
    "5e-324": b"5e-324",
    "2^63": b"9223372036854775808",
    "-2^63-1": b"-9223372036854775809",
    "2^64": b"18446744073709551616",
    "5000 digits": b"1" + b"0" * 5000,
    "5000 decimals": b"0." + b"0" * 5000 + b"1",
    "hex": b"0x10",
    "leading zero": b"01",
    "plus sign": b"+1",
    "10 KB id": json.dumps("C" * 10_000).encode(),
    "100 KB string": json.dumps("é" * 100_000, ensure_ascii=False).encode(),
    "NUL": b'"C\\u0000"',
    "newline": b'"a\\nb"',
    "DEL": b'"a\x7f"',
    "raw control byte": b'"a\x01b"',
    "RTL override": '"C\u202e9"'.encode(),
    "zero-width space": '"a\u200b"'.encode(),
    "BOM": '"\ufeffC1"'.encode(),
    "line separator": '"a\u2028b"'.encode(),
    "private use": '"\ue000"'.encode(),
    "lone surrogate escape": b'"\\ud800"',
    "reversed surrogate pair": b'"\\udfff\\ud800"',
    "overlong NUL (invalid UTF-8)": b'"\xc0\x80"',
    "encoded surrogate (CESU-8)": b'"\xed\xa0\x80"',
    "byte 0xff": b'"\xff"',
    "truncated UTF-8": b'"\xe2\x82"',
    "emoji id": '"\U0001f600"'.encode(),
    "unterminated string": b'"abc',
    "nested arrays 100k deep": b"[" * DEEP + b"]" * DEEP,
    "nested objects 50k deep": b'{"a":' * (DEEP // 2) + b"1" + b"}" * (DEEP // 2),
    "unclosed nesting": b"[" * DEEP,
    "object with a number": b'{"a": [1]}',
}

#: the tokens that are not JSON at all, or nested deeper than a decoder follows
MALFORMED: Final = frozenset(
    {
        "NaN",
        "Infinity",
        "-Infinity",
        "hex",
        "leading zero",
        "plus sign",
        "raw control byte",
        "lone surrogate escape",
        "reversed surrogate pair",
        "unterminated string",
        "nested arrays 100k deep",
        "nested objects 50k deep",
        "unclosed nesting",
    }
)

#: whole message values that are not a record at all
VALUES: Final[dict[str, bytes | None]] = {
    "tombstone (null value)": None,
    "empty value": b"",
    "whitespace": b" \n\t",
    "JSON null": b"null",
    "JSON array": b"[1, 2]",
    "JSON string": b'"PAYMENT"',
    "JSON number": b"1e400",
    "binary": bytes(range(256)),
    "UTF-16 BOM": b"\xff\xfe{\x00}\x00",
    "UTF-8 BOM before an object": b"\xef\xbb\xbf{}",
    "invalid UTF-8": b"\xc3\x28",
    "top-level nesting 100k deep": b"[" * DEEP + b"]" * DEEP,
    "object nesting 100k deep": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "garbage after the object": b"{} x",
}


def obj(items: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from (key, raw value token) pairs, in order, keys repeated as given."""
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in items) + b"}"


def token(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- valid records ---------------------------------------------------------------------------

printable_id = st.text(
    st.characters(exclude_categories=("C", "Z")), min_size=1, max_size=MAX_ID_CHARS
).filter(str.isprintable)
_time = st.integers(0, min(BROKER_MS + MAX_FUTURE_SKEW_MS, MAX_EVENT_TIME_MS - 1))


def _amount(top: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, top, allow_nan=False, allow_infinity=False)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def paysim_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A valid PaySim record (as a dict), judged against :data:`BROKER_MS`."""
    fields: dict[str, Any] = {
        "step": draw(st.integers(0, MAX_STEP)),
        "type": draw(st.sampled_from(KINDS)),
        "amount": draw(_amount(MAX_AMOUNT)),
        "nameOrig": draw(printable_id),
        "nameDest": draw(printable_id),
        "txId": draw(printable_id),
    }
    for name in ("oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest"):
        fields[name] = draw(_optional(_amount(MAX_BALANCE)))
    fields["isFraud"] = draw(_optional(st.sampled_from([0, 1])))
    fields["eventTimeMs"] = draw(_optional(_time))
    fields["fraudScenario"] = draw(_optional(printable_id))
    return {k: v for k, v in fields.items() if v is not None}


@st.composite
def card_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A valid card record (as a dict), judged against :data:`BROKER_MS`."""
    fields: dict[str, Any] = {
        "customerId": draw(printable_id),
        "terminalId": draw(printable_id),
        "amount": draw(_amount(MAX_AMOUNT)),
        "eventTimeMs": draw(_time),
        "txId": draw(printable_id),
        "isFraud": draw(_optional(st.sampled_from([0, 1]))),
        "fraudScenario": draw(_optional(printable_id)),
    }
    return {k: v for k, v in fields.items() if v is not None}


@st.composite
def label_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``fraud-labels`` message (as a dict); ``label_id`` given or left out."""
    fields: dict[str, Any] = {
        "tx_id": draw(printable_id),
        "label": draw(st.sampled_from([0, 1])),
        "labelled_at_ms": draw(_time),
        "source": draw(st.sampled_from(LABEL_SOURCES)),
        "account": draw(_optional(printable_id)),
        "counterparty": draw(_optional(printable_id)),
        "tx_time_ms": draw(_optional(_time)),
        "alert_id": draw(_optional(printable_id)),
        "analyst": draw(_optional(printable_id)),
        "reason": draw(_optional(st.text(max_size=50).filter(str.isprintable))),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if draw(st.booleans()):
        parts = (fields["tx_id"], fields["label"], fields["source"], fields["labelled_at_ms"])
        fields["label_id"] = label_id_of(*parts)
    return fields


#: format name → strategy of its valid records (dicts)
VALID: Final[dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]]] = {
    "paysim": paysim_fields,
    "card": card_fields,
    "labels": label_fields,
}

# --- hostile values --------------------------------------------------------------------------

_text_any = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
json_any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()  # NaN and infinities included: json.dumps writes them as bare tokens
    | _text_any,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text_any, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def json_bytes(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_any) -> bytes:
    """Any JSON value as bytes: escaped or raw UTF-8 (lone surrogates then encoded as such)."""
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


hostile_token = st.sampled_from(list(TOKENS.values())) | json_bytes()


def valid(fmt: str, fix: Mapping[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``fmt`` records (dicts), with the fields of ``fix`` set to its values."""
    return VALID[fmt]().map(lambda f: {**f, **(fix or {})})


@st.composite
def mutated(
    draw: st.DrawFn,
    fmt: str,
    keep: frozenset[str] = frozenset(),
    fix: Mapping[str, Any] | None = None,
) -> bytes:
    """A valid ``fmt`` record (``fix`` as in :func:`valid`) with one to three mutations: a field
    replaced by a hostile value, dropped, an unknown field added, a key duplicated; or the bytes
    truncated or corrupted. ``keep``: fields left alone (e.g. the id a test counts by)."""
    items = [(k, token(v)) for k, v in draw(valid(fmt, fix)).items()]
    for _ in range(draw(st.integers(1, 3))):
        names = [k for k, _ in items if k not in keep]
        how = draw(st.sampled_from(["replace", "drop", "add", "duplicate"]))
        if how == "add" or not names:
            items.append((draw(_text_any), draw(hostile_token)))
            continue
        name = draw(st.sampled_from(names))
        at = next(i for i, (k, _) in enumerate(items) if k == name)
        if how == "replace":
            items[at] = (items[at][0], draw(hostile_token))
        elif how == "drop":
            del items[at]
        else:
            items.insert(draw(st.integers(0, len(items))), (items[at][0], draw(hostile_token)))
    raw = obj(items)
    cut = draw(st.sampled_from(["none", "none", "truncate", "corrupt"]))
    if cut == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif cut == "corrupt":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at + 1 :]
    return raw


def any_value(
    fmt: str, keep: frozenset[str] = frozenset(), fix: Mapping[str, Any] | None = None
) -> st.SearchStrategy[bytes | None]:
    """One message value of a ``fmt`` topic: valid, mutated (``keep``, ``fix``: see
    :func:`mutated`), any JSON, any bytes or a corpus value."""
    return st.one_of(
        valid(fmt, fix).map(lambda f: obj([(k, token(v)) for k, v in f.items()])),
        mutated(fmt, keep, fix),
        json_bytes(),
        st.binary(max_size=64),
        st.sampled_from(list(VALUES.values())),
    )
