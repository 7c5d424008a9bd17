"""A request's transaction: the stream's own record format, validated by the stream's decoder.

``POST /v1/decisions`` takes one record in the format the detector reads (PaySim, or the card
format when the promoted bundle is a card bundle), decoded and bounded by the same
``schema.decode_paysim`` / ``schema.decode_card`` as the detector, so a record the API accepts
is one the detector scores. Its OpenAPI schema is msgspec's schema of the same struct.

A card bundle's extra fields (:func:`card_format`) are typed by their kind
(``schema.EXTRA_TYPES``): a value the detector would read as missing (a word as a number, a
latitude of 95) is refused here, naming the field, where the stream can only count it missing;
a valid one is produced as ``replay`` sends it, so the detector computes the same features.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import msgspec.structs

from fraudstream.schema import (
    CardRecord,
    Invalid,
    PaySimRecord,
    decode_card,
    decode_paysim,
    encode_card,
    encode_paysim,
    typed_card_decoder,
)
from fraudstream.schema._roles import ExtraKind

__all__ = [
    "CARD_FORMAT",
    "PAYSIM_FORMAT",
    "ApiRecord",
    "InvalidRecord",
    "RecordFormat",
    "card_format",
    "field_of",
    "struct_schema",
]

_AT_FIELD: Final = re.compile(r"at `\$\.([^`]+)`")
_LEADING_FIELD: Final = re.compile(r"(\w+) ")

Decode = Callable[
    [Sequence[bytes | None], Sequence[int] | None], tuple[list[Any], list[int], list[Invalid]]
]


class InvalidRecord(ValueError):
    """A request body the detector would dead-letter: ``field`` (or ``None``) and the reason."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ApiRecord:
    """A validated request: its id, Kafka key, the value to produce and what identifies it."""

    tx_id: str
    key: str
    value: bytes
    #: (account, counterparty, amount): a retry under the same id must repeat them
    facts: tuple[str, str, float]
    #: the declared extra fields' values in order (None: absent), which a retry must repeat too
    extras: tuple[object, ...] = ()


@dataclass(frozen=True)
class RecordFormat:
    """One record format the API accepts (the detector's: see the module's notes)."""

    name: str
    struct: type[msgspec.Struct]
    decode: Decode
    encode: Callable[[Any], bytes]
    account_field: str
    counterparty_field: str
    #: the struct's attributes holding the declared extra fields
    extra_fields: tuple[str, ...] = ()

    @property
    def extra_names(self) -> tuple[str, ...]:
        """The declared extra fields as JSON names them."""
        n = len(self.extra_fields)
        return self.struct.__struct_encode_fields__[-n:] if n else ()

    def parse(self, body: bytes, now_ms: int | None = None) -> ApiRecord:
        """Validate ``body``; ``InvalidRecord`` names the field at fault.

        A record without ``txId`` gets a random one (a retry can then not be recognised: send
        one). The event time may be at most a day ahead of now, as the detector allows.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        records, _, invalid = self.decode([body], [now])
        if invalid:
            reason = invalid[0].reason
            raise InvalidRecord(field_of(reason, self.struct), reason)
        record = records[0]
        if record.txId is None:
            record = msgspec.structs.replace(record, txId=f"api-{uuid.uuid4().hex}")
        extras = tuple(getattr(record, f) for f in self.extra_fields) if self.extra_fields else ()
        account = str(getattr(record, self.account_field))
        counterparty = str(getattr(record, self.counterparty_field))
        return ApiRecord(
            tx_id=record.txId,
            key=account,
            value=self.encode(record),
            facts=(account, counterparty, float(record.amount)),
            extras=extras,
        )


def struct_schema(struct: type[msgspec.Struct]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema of a body of type struct, components)`` for the OpenAPI document."""
    (schema,), components = msgspec.json.schema_components(
        [struct], ref_template="#/components/schemas/{name}"
    )
    return schema, components


def field_of(reason: str, struct: type[msgspec.Struct]) -> str | None:
    """The field of ``struct`` a decoder's ``reason`` names (``at `$.amount```, a bound's
    reason that starts with the field's name, a missing field), else ``None``."""
    fields = set(struct.__struct_encode_fields__)
    found = _AT_FIELD.search(reason)
    if found is None:
        text = reason.split(": ", 1)[-1]
        found = _LEADING_FIELD.match(text)
    field = found.group(1) if found and found.group(1) in fields else None
    if field is None and "missing required field" in reason:
        quoted = re.search(r"`(\w+)`", reason)
        field = quoted.group(1) if quoted else None
    return field


PAYSIM_FORMAT: Final = RecordFormat(
    "paysim", PaySimRecord, decode_paysim, encode_paysim, "nameOrig", "nameDest"
)
CARD_FORMAT: Final = RecordFormat(
    "card", CardRecord, decode_card, encode_card, "customerId", "terminalId"
)


def card_format(extras: Sequence[tuple[str, ExtraKind]]) -> RecordFormat:
    """The card format with the extra fields ``extras`` (name, kind) a card bundle reads."""
    if not extras:
        return CARD_FORMAT
    decoder = typed_card_decoder(tuple(extras))

    def decode(
        values: Sequence[bytes | None], broker_ts_ms: Sequence[int] | None
    ) -> tuple[list[Any], list[int], list[Invalid]]:
        return decode_card(values, broker_ts_ms, decoder=decoder)

    attributes = decoder.type.__struct_fields__[len(CardRecord.__struct_fields__) :]
    return RecordFormat(
        "card", decoder.type, decode, encode_card, "customerId", "terminalId", attributes
    )
