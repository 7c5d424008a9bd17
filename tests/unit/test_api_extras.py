"""A card bundle's extra fields in decision requests: typed by their kind, refused naming the
field, produced as ``replay`` sends them (no server: the record format alone)."""

from __future__ import annotations

import msgspec
import pytest

from fraudstream.api._records import CARD_FORMAT, InvalidRecord, card_format, struct_schema
from fraudstream.features import CardExtras, CardFeatureEngine, ExtraField
from fraudstream.schema import CardRecord, card_to_batch, decode_card, encode_card

NOW = 1_800_000_000_000
FIELDS = (
    ExtraField("category", "categorical", vocabulary=("grocery", "travel")),
    ExtraField("city pop", "numeric"),
    ExtraField("is_online", "boolean"),
    ExtraField("lat", "latitude", "home"),
    ExtraField("long", "longitude", "home"),
    ExtraField("merch_lat", "latitude", "shop"),
    ExtraField("merch_long", "longitude", "shop"),
)
FORMAT = card_format([(f.name, f.kind) for f in FIELDS])
NAMES = tuple(f.name for f in FIELDS)
RECORD = CardRecord(customerId="c7", terminalId="T9", amount=20.0, eventTimeMs=NOW, txId="k")
EXTRAS: dict[str, object] = {
    "category": "travel",
    "city pop": 1_200.0,
    "is_online": True,
    "lat": 48.85,
    "long": 2.35,
    "merch_lat": 51.5,
    "merch_long": -0.12,
}


def body(**extras: object) -> bytes:
    return msgspec.json.encode({**msgspec.to_builtins(RECORD), **EXTRAS, **extras})


def test_extras_are_produced_as_replay_sends_them_and_read_back_alike() -> None:
    record = FORMAT.parse(body(), now_ms=NOW)
    assert FORMAT.extra_names == NAMES
    assert record.extras == ("travel", 1200.0, True, 48.85, 2.35, 51.5, -0.12)
    assert record.value == encode_card(RECORD, {k: EXTRAS[k] for k in NAMES})
    decoded, _, invalid = decode_card([record.value], None, NAMES)
    assert not invalid
    spec = CardExtras(FIELDS)
    x = CardFeatureEngine(extras=spec).update_and_extract(card_to_batch(decoded, ["k"], NAMES))
    row = dict(zip(CardFeatureEngine(extras=spec).feature_names, x[0].tolist(), strict=True))
    assert row["category"] == 1.0 and row["city pop"] == 1200.0 and row["is_online"] == 1.0
    assert row["distance_km_home_shop"] == pytest.approx(343.5, abs=1.0)


def test_null_absent_and_unknown_fields_are_left_out_as_the_stream_ignores_them() -> None:
    record = FORMAT.parse(body(category=None, lat=None, TX_MCC=5411, **{"city pop": 7}), now_ms=NOW)
    assert record.extras[1] == 7.0  # an integer is a number, sent as replay sends it (7.0)
    sent = msgspec.json.decode(record.value)
    assert "category" not in sent and "lat" not in sent and "TX_MCC" not in sent
    assert record.extras[0] is None and record.extras[3] is None
    plain = msgspec.json.encode(msgspec.to_builtins(RECORD))
    assert FORMAT.parse(plain, now_ms=NOW).extras == (None,) * len(NAMES)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("category", 5, "Expected `str | null`, got `int`"),
        ("city pop", "1200", "Expected `float | null`, got `str`"),
        ("is_online", 1, "Expected `bool | null`, got `int`"),
        ("lat", 95.0, "<= 90.0"),
        ("merch_long", -181, ">= -180.0"),
        ("long", {"deg": 2}, "got `object`"),
    ],
)
def test_a_value_of_another_type_or_range_names_its_field(
    field: str, value: object, fragment: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        FORMAT.parse(body(**{field: value}), now_ms=NOW)
    assert caught.value.field == field
    assert fragment in caught.value.reason


def test_the_documented_body_shows_the_extras_and_a_bundle_without_them_is_unchanged() -> None:
    schema, parts = struct_schema(FORMAT.struct)
    assert schema == {"$ref": "#/components/schemas/CardRecordWithExtras"}
    props = parts["CardRecordWithExtras"]["properties"]
    assert props["city pop"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["is_online"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
    assert props["lat"]["anyOf"][0]["maximum"] == 90.0
    assert "extra field (categorical)" in props["category"]["description"]
    _, plain = struct_schema(CARD_FORMAT.struct)
    assert parts["CardRecordWithExtras"]["required"] == plain["CardRecord"]["required"]
    assert card_format([]) is CARD_FORMAT and CARD_FORMAT.extra_names == ()
    assert CARD_FORMAT.parse(body(), now_ms=NOW).extras == ()


def test_an_extra_named_like_a_record_field_is_refused() -> None:
    with pytest.raises(ValueError, match="amount"):
        card_format([("amount", "numeric")])
