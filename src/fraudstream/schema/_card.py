"""The card format (Fraud Detection Handbook, Sparkov-style): decoding, validation, mapping.

A card transaction is a customer (card), a terminal (merchant), an amount and a time. On Kafka it is
a JSON object; in files it uses the handbook's column names (see :data:`CARD_COLUMNS`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, cast

import msgspec
import numpy as np

from fraudstream.schema._bounds import MAX_AMOUNT, MAX_ID_CHARS
from fraudstream.schema._canonical import KINDS, TxBatch
from fraudstream.schema._paysim import EventTimeMs, Invalid, decode_checked
from fraudstream.schema._roles import ExtraKind

__all__ = [
    "CARD_COLUMNS",
    "EXTRA_TYPES",
    "CardRecord",
    "card_decoder",
    "card_to_batch",
    "decode_card",
    "encode_card",
    "typed_card_decoder",
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
    decoder: msgspec.json.Decoder[CardRecord] | None = None,
) -> tuple[list[CardRecord], list[int], list[Invalid]]:
    """Decode and validate raw message values (see :func:`~fraudstream.schema.decode_paysim`).

    ``extras``: extra fields to read too, each as whatever JSON value it holds (absent: None);
    they are not validated here (a wrong type or range is a missing value to the features).
    ``decoder``: one of :func:`typed_card_decoder` instead, whose extra fields are validated.
    """
    return decode_checked(
        card_decoder(extras) if decoder is None else decoder,
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
    return msgspec.json.Decoder(_with_extras(extras, [Any] * len(extras)))


#: An extra field's JSON type by its kind: the type ``replay`` sends (a file's cells as read).
EXTRA_TYPES: Final[dict[ExtraKind, Any]] = {
    "categorical": str,
    "numeric": float,
    "boolean": bool,
    "latitude": Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)],
    "longitude": Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)],
}
_EXTRA_DOC: Final = "an extra field ({}), a model input; null or absent: a missing value"


@functools.cache
def typed_card_decoder(
    extras: tuple[tuple[str, ExtraKind], ...],
) -> msgspec.json.Decoder[CardRecord]:
    """The decoder of card records whose extra fields ``extras`` (name, kind) hold their kind's
    type (:data:`EXTRA_TYPES`) or are null or absent: a value the features would read as missing
    for its type or range is a ``ValidationError`` naming the field. Unknown fields are ignored,
    as by :func:`card_decoder`."""
    types = [
        Annotated[EXTRA_TYPES[kind] | None, msgspec.Meta(description=_EXTRA_DOC.format(kind))]
        for _, kind in extras
    ]
    return msgspec.json.Decoder(_with_extras(tuple(name for name, _ in extras), types))


def _with_extras(names: tuple[str, ...], types: Sequence[Any]) -> type[CardRecord]:
    """A card record with the optional fields ``names`` of ``types``. Its attributes are
    ``extra_0``, ``extra_1``, … (a name need not be an identifier: ``city pop``); JSON, errors
    and the schema use the names."""
    taken = set(CardRecord.__struct_fields__) & set(names)
    if taken:
        raise ValueError(f"extra field(s) {sorted(taken)} are card record fields")
    attributes = [f"extra_{i}" for i in range(len(names))]
    struct = msgspec.defstruct(
        "CardRecordWithExtras",
        [(a, t, None) for a, t in zip(attributes, types, strict=True)],
        bases=(CardRecord,),
        omit_defaults=True,
        gc=False,
        rename=dict(zip(attributes, names, strict=True)),
    )
    return cast("type[CardRecord]", struct)


def encode_card(record: CardRecord, extras: Mapping[str, object] | None = None) -> bytes:
    """The record as JSON, with the ``extras`` fields that are not ``None``."""
    if not extras:
        return _encoder.encode(record)
    fields = msgspec.to_builtins(record)
    fields.update((k, v) for k, v in extras.items() if v is not None)
    return _encoder.encode(fields)


def _attributes(records: Sequence[CardRecord], names: Sequence[str]) -> list[str]:
    """The attributes of the extra fields ``names`` in ``records`` (see :func:`_with_extras`)."""
    if not records or not names:
        return list(names)
    struct = type(records[0])
    attribute = dict(zip(struct.__struct_encode_fields__, struct.__struct_fields__, strict=True))
    return [attribute.get(n, n) for n in names]


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
        extras={
            name: [getattr(r, attribute, None) for r in records]
            for name, attribute in zip(extras, _attributes(records, extras), strict=True)
        },
    )
