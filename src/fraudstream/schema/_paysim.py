"""PaySim, the bank's JSON format: decoding, validation and mapping onto the canonical batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, TypeVar

import msgspec
import numpy as np

from fraudstream.schema._canonical import KINDS, TxBatch

__all__ = [
    "Invalid",
    "PaySimRecord",
    "decode_paysim",
    "decode_records",
    "encode_paysim",
    "paysim_to_batch",
]

R = TypeVar("R")

_NonNeg = Annotated[float, msgspec.Meta(ge=0.0)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Bit = Annotated[int, msgspec.Meta(ge=0, le=1)]
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_HOUR_MS = 3_600_000


# gc=False: scalar and string fields only, so no cycle tracking (cheaper to create and free)
class PaySimRecord(msgspec.Struct, omit_defaults=True, gc=False):
    """One PaySim transaction as the bank sends it (JSON object, PaySim's column names).

    Balances are optional (a pre-authorisation message has no post-transaction balances).
    ``txId`` and ``eventTimeMs`` are optional extensions: without them the detector derives the id
    from topic/partition/offset and the time from the Kafka message timestamp.
    """

    step: Annotated[int, msgspec.Meta(ge=0)]
    type: Literal["PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT"]
    amount: _NonNeg
    nameOrig: _Name
    nameDest: _Name
    oldbalanceOrg: _NonNeg | None = None
    newbalanceOrig: _NonNeg | None = None
    oldbalanceDest: _NonNeg | None = None
    newbalanceDest: _NonNeg | None = None
    isFraud: _Bit | None = None
    isFlaggedFraud: _Bit = 0
    txId: _Name | None = None
    eventTimeMs: Annotated[int, msgspec.Meta(ge=0)] | None = None
    fraudScenario: str | None = None


class Invalid(msgspec.Struct, frozen=True):
    """A record that failed validation: its position in the input and a readable reason."""

    index: int
    reason: str


_decoder = msgspec.json.Decoder(PaySimRecord)
_encoder = msgspec.json.Encoder()


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
            invalid.append(Invalid(i, f"invalid {what} transaction: {exc}"))
            continue
        except msgspec.DecodeError as exc:
            invalid.append(Invalid(i, f"not valid JSON: {exc}"))
            continue
        records.append(rec)
        positions.append(i)
    return records, positions, invalid


def decode_paysim(
    values: Sequence[bytes | None],
) -> tuple[list[PaySimRecord], list[int], list[Invalid]]:
    """Decode and validate raw message values (see :func:`decode_records`)."""
    return decode_records(_decoder, values, "PaySim")


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
