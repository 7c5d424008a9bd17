"""PaySim, the bank's JSON format: decoding, validation and mapping onto the canonical batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, TypeVar

import msgspec
import numpy as np

from fraudstream.schema._bounds import (
    MAX_AMOUNT,
    MAX_BALANCE,
    MAX_ID_CHARS,
    MAX_STEP,
    check_batch,
)
from fraudstream.schema._canonical import KINDS, TxBatch

__all__ = [
    "Invalid",
    "PaySimRecord",
    "decode_checked",
    "decode_paysim",
    "decode_records",
    "encode_paysim",
    "paysim_to_batch",
]

R = TypeVar("R")

_Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
_Balance = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_BALANCE)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_Bit = Annotated[int, msgspec.Meta(ge=0, le=1)]
#: Fits an int64; the event-time bounds with a readable reason are checked on the batch.
EventTimeMs = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_HOUR_MS = 3_600_000
#: Longest reason quoted from a decoder's message (see :func:`_reason_of`).
MAX_QUOTED_CHARS = 300


# gc=False: scalar and string fields only, so no cycle tracking (cheaper to create and free)
class PaySimRecord(msgspec.Struct, omit_defaults=True, gc=False):
    """One PaySim transaction as the bank sends it (JSON object, PaySim's column names).

    Balances are optional (a pre-authorisation message has no post-transaction balances).
    Bounds (``schema._bounds``): ``0 <= amount <= MAX_AMOUNT``, balances ``<= MAX_BALANCE``,
    ``0 <= step <= MAX_STEP``, text of 1 to ``MAX_ID_CHARS`` printable characters, event time
    before 2100 and at most a day ahead of the broker timestamp.
    ``txId`` and ``eventTimeMs`` are optional extensions: without them the detector derives the id
    from topic/partition/offset and the time from the Kafka message timestamp.
    """

    step: Annotated[int, msgspec.Meta(ge=0, le=MAX_STEP)]
    type: Literal["PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT"]
    amount: _Amount
    nameOrig: _Name
    nameDest: _Name
    oldbalanceOrg: _Balance | None = None
    newbalanceOrig: _Balance | None = None
    oldbalanceDest: _Balance | None = None
    newbalanceDest: _Balance | None = None
    isFraud: _Bit | None = None
    isFlaggedFraud: _Bit = 0
    txId: _Name | None = None
    eventTimeMs: EventTimeMs | None = None
    fraudScenario: _Name | None = None


class Invalid(msgspec.Struct, frozen=True):
    """A record that failed validation: its position in the input and a readable reason."""

    index: int
    reason: str


_decoder = msgspec.json.Decoder(PaySimRecord)
_PAYSIM_TEXT = ("nameOrig", "nameDest", "txId", "fraudScenario")
_encoder = msgspec.json.Encoder()


def _reason_of(exc: Exception) -> str:
    """``exc``'s message as printable text of at most :data:`MAX_QUOTED_CHARS` characters.

    msgspec quotes a rejected value in some messages (``Invalid enum value '...'``): a hostile
    value must not put control characters, lone surrogates or a megabyte into a DLQ header.
    """
    text, at, path = str(exc).rpartition(" - at `")  # the field at fault is kept whole
    text, path = (text, at + path) if at else (path, "")
    return _printable(text, MAX_QUOTED_CHARS) + _printable(path, 100)


def _printable(text: str, limit: int) -> str:
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return text


def decode_records(
    decoder: msgspec.json.Decoder[R], values: Sequence[bytes | None], what: str
) -> tuple[list[R], list[int], list[Invalid]]:
    """Decode and validate raw message values with ``decoder`` (``what`` names the format).

    Returns the valid records, their positions in ``values`` and the invalid ones with reasons.
    Never raises for bad input.
    """
    records: list[R] = []
    positions: list[int] = []
    invalid: list[Invalid] = []
    decode = decoder.decode
    for i, raw in enumerate(values):
        if raw is None:
            invalid.append(Invalid(i, "empty message value (tombstone); expected a JSON object"))
            continue
        try:
            rec = decode(raw)
        except msgspec.ValidationError as exc:
            invalid.append(Invalid(i, f"invalid {what} transaction: {_reason_of(exc)}"))
            continue
        except msgspec.DecodeError as exc:
            invalid.append(Invalid(i, f"not valid JSON: {_reason_of(exc)}"))
            continue
        except RecursionError:  # msgspec skips an unknown field's value recursively
            invalid.append(Invalid(i, f"invalid {what} transaction: JSON nested too deeply"))
            continue
        except UnicodeDecodeError as exc:  # msgspec checks UTF-8 only in strings it keeps
            invalid.append(Invalid(i, f"not valid JSON: a string is not UTF-8 ({exc.reason})"))
            continue
        records.append(rec)
        positions.append(i)
    return records, positions, invalid


def decode_checked(
    decoder: msgspec.json.Decoder[R],
    values: Sequence[bytes | None],
    what: str,
    *,
    text_fields: Sequence[str],
    time_field: str,
    broker_ts_ms: Sequence[int] | None,
) -> tuple[list[R], list[int], list[Invalid]]:
    """:func:`decode_records`, then the batch bounds of :func:`~fraudstream.schema._bounds.
    check_batch` (``broker_ts_ms``: the Kafka timestamp of each of ``values``, if known)."""
    records, positions, invalid = decode_records(decoder, values, what)
    if not records:
        return records, positions, invalid
    every = len(positions) == len(values)  # the common case: no copies
    ts = None
    if broker_ts_ms is not None:
        ts = np.asarray(broker_ts_ms, dtype=np.int64)
        ts = ts if every else ts[np.asarray(positions, dtype=np.intp)]
    raw: Sequence[bytes | None] = values if every else [values[i] for i in positions]
    bad = check_batch(records, raw, text_fields=text_fields, time_field=time_field, broker_ts_ms=ts)
    if not bad:
        return records, positions, invalid
    invalid += [
        Invalid(positions[j], f"invalid {what} transaction: {why}") for j, why in bad.items()
    ]
    invalid.sort(key=lambda v: v.index)
    kept = [j for j in range(len(records)) if j not in bad]
    return [records[j] for j in kept], [positions[j] for j in kept], invalid


def decode_paysim(
    values: Sequence[bytes | None], broker_ts_ms: Sequence[int] | None = None
) -> tuple[list[PaySimRecord], list[int], list[Invalid]]:
    """Decode and validate raw message values (see :func:`decode_records`).

    ``broker_ts_ms`` (the records' Kafka timestamps) adds the check that ``eventTimeMs`` is at
    most a day ahead of its record's broker timestamp.
    """
    return decode_checked(
        _decoder,
        values,
        "PaySim",
        text_fields=_PAYSIM_TEXT,
        time_field="eventTimeMs",
        broker_ts_ms=broker_ts_ms,
    )


def encode_paysim(record: PaySimRecord) -> bytes:
    """The record as the bank's JSON."""
    return _encoder.encode(record)


def _nan_if_none(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def paysim_to_batch(
    records: Sequence[PaySimRecord],
    tx_ids: Sequence[str],
    fallback_time_ms: Sequence[int] | None = None,
) -> TxBatch:
    """Map PaySim records onto the canonical batch.

    ``tx_ids`` are used where a record has no ``txId``; event time is ``eventTimeMs`` if sent, else
    ``fallback_time_ms`` (the Kafka timestamp), else the start of the record's ``step`` hour.
    """
    n = len(records)
    times = np.empty(n, dtype=np.int64)
    for i, r in enumerate(records):
        if r.eventTimeMs is not None:
            times[i] = r.eventTimeMs
        elif fallback_time_ms is not None:
            times[i] = fallback_time_ms[i]
        else:
            times[i] = r.step * _HOUR_MS
    return TxBatch(
        tx_id=[r.txId or t for r, t in zip(records, tx_ids, strict=True)],
        event_time_ms=times,
        account=[r.nameOrig for r in records],
        counterparty=[r.nameDest for r in records],
        kind=np.array([_KIND_CODE[r.type] for r in records], dtype=np.int8),
        amount=np.array([r.amount for r in records], dtype=np.float64),
        old_balance_orig=_nan_if_none([r.oldbalanceOrg for r in records]),
        new_balance_orig=_nan_if_none([r.newbalanceOrig for r in records]),
        old_balance_dest=_nan_if_none([r.oldbalanceDest for r in records]),
        new_balance_dest=_nan_if_none([r.newbalanceDest for r in records]),
        label=np.array([-1 if r.isFraud is None else r.isFraud for r in records], dtype=np.int8),
        step=np.array([r.step for r in records], dtype=np.int64),
        flagged=np.array([r.isFlaggedFraud for r in records], dtype=np.int8),
        scenario=[r.fraudScenario for r in records],
    )
