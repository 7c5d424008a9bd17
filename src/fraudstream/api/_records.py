"""A request's transaction: the stream's own record format, validated by the stream's decoder.

``POST /v1/decisions`` takes one record in the format the detector reads (PaySim, or the card
format when the promoted bundle is a card bundle), decoded and bounded by the same
``schema.decode_paysim`` / ``schema.decode_card`` as the detector, so a record the API accepts
is one the detector scores. Its OpenAPI schema is msgspec's schema of the same struct.
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
)

__all__ = [
    "CARD_FORMAT",
    "PAYSIM_FORMAT",
    "ApiRecord",
    "InvalidRecord",
    "RecordFormat",
    "field_of",
    "struct_schema",
]

_AT_FIELD: Final = re.compile(r"at `\$\.(\w+)")
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


@dataclass(frozen=True)
class RecordFormat:
    """One record format the API accepts (the detector's: see the module's notes)."""

    name: str
    struct: type[msgspec.Struct]
    decode: Decode
    encode: Callable[[Any], bytes]
    account_field: str
    counterparty_field: str

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
        account = str(getattr(record, self.account_field))
        counterparty = str(getattr(record, self.counterparty_field))
        return ApiRecord(
            tx_id=record.txId,
            key=account,
            value=self.encode(record),
            facts=(account, counterparty, float(record.amount)),
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
    fields = set(struct.__struct_fields__)
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
