"""The card format (Fraud Detection Handbook, Sparkov-style): decoding, validation, mapping.

A card transaction is a customer (card), a terminal (merchant), an amount and a time. On Kafka it is
a JSON object; in files it uses the handbook's column names (see :data:`CARD_COLUMNS`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec
import numpy as np

from fraudstream.schema._bounds import MAX_AMOUNT, MAX_ID_CHARS
from fraudstream.schema._canonical import KINDS, TxBatch
from fraudstream.schema._paysim import EventTimeMs, Invalid, decode_checked

__all__ = [
    "CARD_COLUMNS",
    "CardRecord",
    "card_decoder",
    "card_to_batch",
    "decode_card",
    "encode_card",
]

_Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_Bit = Annotated[int, msgspec.Meta(ge=0, le=1)]
_PAYMENT: Final = KINDS.index("PAYMENT")
_HOUR_MS: Final = 3_600_000

#: The columns ``fraudstream simulate --format card --out`` writes: the handbook's, then our
#: merchant category and channel (extra fields: declare them to use them as model inputs).
CARD_COLUMNS: Final = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
    "TX_CATEGORY",
    "TX_CHANNEL",
)


# gc=False: scalar and string fields only, so no cycle tracking (cheaper to create and free)
class CardRecord(msgspec.Struct, omit_defaults=True, gc=False):
    """One card transaction as JSON: who paid, where, how much, when (ms since the epoch).

    ``isFraud`` and ``fraudScenario`` are ground truth from a simulator or a chargeback feed: for
    evaluation only, never a model input. ``txId`` is optional, as for PaySim. Bounds as for
    PaySim (``schema._bounds``).
    """

    customerId: _Name
    terminalId: _Name
    amount: _Amount
    eventTimeMs: EventTimeMs
    txId: _Name | None = None
    isFraud: _Bit | None = None
    fraudScenario: _Name | None = None


_decoder = msgspec.json.Decoder(CardRecord)
_CARD_TEXT = ("customerId", "terminalId", "txId", "fraudScenario")
_encoder = msgspec.json.Encoder()


def decode_card(
    values: Sequence[bytes | None],
    broker_ts_ms: Sequence[int] | None = None,
    extras: tuple[str, ...] = (),
) -> tuple[list[CardRecord], list[int], list[Invalid]]:
    """Decode and validate raw message values (see :func:`~fraudstream.schema.decode_paysim`).

    ``extras``: extra fields to read too, each as whatever JSON value it holds (absent: None);
    they are not validated here (a wrong type or range is a missing value to the features).
    """
    return decode_checked(
        card_decoder(extras),
        values,
        "card",
        text_fields=_CARD_TEXT,
        time_field="eventTimeMs",
        broker_ts_ms=broker_ts_ms,
    )


@functools.cache
def card_decoder(extras: tuple[str, ...] = ()) -> msgspec.json.Decoder[CardRecord]:
    """The decoder of card records that also reads the fields ``extras`` (any JSON value)."""
    if not extras:
        return _decoder
    taken = set(CardRecord.__struct_fields__) & set(extras)
    if taken:
        raise ValueError(f"extra field(s) {sorted(taken)} are card record fields")
    fields = [(name, Any, None) for name in extras]
    struct = msgspec.defstruct(
        "CardRecordWithExtras", fields, bases=(CardRecord,), omit_defaults=True, gc=False
    )
    return msgspec.json.Decoder(struct)


def encode_card(record: CardRecord, extras: Mapping[str, object] | None = None) -> bytes:
    """The record as JSON, with the ``extras`` fields that are not ``None``."""
    if not extras:
        return _encoder.encode(record)
    fields = msgspec.to_builtins(record)
    fields.update((k, v) for k, v in extras.items() if v is not None)
    return _encoder.encode(fields)


def card_to_batch(
    records: Sequence[CardRecord], tx_ids: Sequence[str], extras: Sequence[str] = ()
) -> TxBatch:
    """Map card records onto the canonical batch: account = customer, counterparty = terminal.

    Every card transaction is a PAYMENT; balances are absent (``NaN``); ``tx_ids`` are used where a
    record has no ``txId``; ``step`` is the hour since the epoch. ``extras``: the extra fields
    read (:func:`card_decoder`), into the batch's extras.
    """
    n = len(records)
    times = np.fromiter((r.eventTimeMs for r in records), dtype=np.int64, count=n)
    nan = np.full(n, np.nan)
    return TxBatch(
        tx_id=[r.txId or t for r, t in zip(records, tx_ids, strict=True)],
        event_time_ms=times,
        account=[r.customerId for r in records],
        counterparty=[r.terminalId for r in records],
        kind=np.full(n, _PAYMENT, dtype=np.int8),
        amount=np.fromiter((r.amount for r in records), dtype=np.float64, count=n),
        old_balance_orig=nan,
        new_balance_orig=nan.copy(),
        old_balance_dest=nan.copy(),
        new_balance_dest=nan.copy(),
        label=np.fromiter(
            (-1 if r.isFraud is None else r.isFraud for r in records), dtype=np.int8, count=n
        ),
        step=times // _HOUR_MS,
        flagged=np.zeros(n, dtype=np.int8),
        scenario=[r.fraudScenario for r in records],
        extras={name: [getattr(r, name, None) for r in records] for name in extras},
    )
