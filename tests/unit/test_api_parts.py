"""The decision API's parts without a server: request records, labels, keys (real SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from fraudstream.api import KeyChecker, create_key, list_keys, parse_scopes, revoke_key
from fraudstream.api._labels import label_key, label_schema, parse_label
from fraudstream.api._records import CARD_FORMAT, PAYSIM_FORMAT, InvalidRecord, struct_schema
from fraudstream.dashboard import Database
from fraudstream.errors import ConfigError
from fraudstream.schema import decode_paysim, label_id_of

NOW = 1_800_000_000_000
RECORD = {
    "step": 3,
    "type": "TRANSFER",
    "amount": 181.5,
    "nameOrig": "C1",
    "nameDest": "M2",
    "txId": "t-1",
}


def body(**changes: object) -> bytes:
    fields = {k: v for k, v in {**RECORD, **changes}.items() if v is not None}
    return msgspec.json.encode(fields)


def test_a_record_is_produced_as_the_detector_decodes_it() -> None:
    record = PAYSIM_FORMAT.parse(body(), now_ms=NOW)
    assert (record.tx_id, record.key, record.facts) == ("t-1", "C1", ("C1", "M2", 181.5))
    decoded, _, invalid = decode_paysim([record.value])
    assert not invalid and decoded[0].txId == "t-1" and decoded[0].amount == 181.5


def test_a_record_without_an_id_gets_a_fresh_one() -> None:
    one = PAYSIM_FORMAT.parse(body(txId=None), now_ms=NOW)
    two = PAYSIM_FORMAT.parse(body(txId=None), now_ms=NOW)
    assert one.tx_id.startswith("api-") and one.tx_id != two.tx_id
    assert msgspec.json.decode(one.value)["txId"] == one.tx_id


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (body(amount=-1.0), "amount", ">= 0.0"),
        (body(amount="12"), "amount", "got `str`"),
        (body(type="WIRE"), "type", "Invalid enum value"),
        (msgspec.json.encode({k: v for k, v in RECORD.items() if k != "nameDest"}), "nameDest", ""),
        (body(nameOrig="C\u202e1"), "nameOrig", "non-printable"),
        (body(eventTimeMs=NOW + 2 * 86_400_000), "eventTimeMs", "ahead"),
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "Expected `object`"),
    ],
)
def test_an_invalid_record_names_its_field(raw: bytes, field: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        PAYSIM_FORMAT.parse(raw, now_ms=NOW)
    assert caught.value.field == field
    assert fragment in caught.value.reason


def test_card_records_use_the_card_format() -> None:
    raw = msgspec.json.encode(
        {"customerId": "c7", "terminalId": "T9", "amount": 20.0, "eventTimeMs": NOW, "txId": "k"}
    )
    record = CARD_FORMAT.parse(raw, now_ms=NOW)
    assert (record.key, record.facts) == ("c7", ("c7", "T9", 20.0))
    with pytest.raises(InvalidRecord) as caught:
        CARD_FORMAT.parse(body(), now_ms=NOW)  # a PaySim record is not a card record
    assert caught.value.field in {"customerId", "terminalId", "eventTimeMs"}


def test_the_documented_bodies_are_the_decoders_structs() -> None:
    schema, parts = struct_schema(PAYSIM_FORMAT.struct)
    assert schema == {"$ref": "#/components/schemas/PaySimRecord"}
    paysim = parts["PaySimRecord"]
    assert set(paysim["required"]) == {"step", "type", "amount", "nameOrig", "nameDest"}
    assert paysim["properties"]["amount"]["minimum"] == 0.0
    body_schema, parts = label_schema()
    assert body_schema == {"$ref": "#/components/schemas/LabelMessage"}
    required = parts["LabelMessage"]["required"]
    assert "tx_id" in required and "labelled_at_ms" not in required


def test_a_label_is_dated_now_at_the_earliest_and_completed_from_the_store() -> None:
    asked: list[list[str]] = []

    def facts(ids: list[str]) -> dict[str, tuple[str, str, int]]:
        asked.append(ids)
        return {"t-1": ("C1", "M2", NOW - 5)}

    raw = msgspec.json.encode({"tx_id": "t-1", "label": 1, "source": "chargeback"})
    label = parse_label(raw, facts, now_ms=NOW)
    assert (label.labelled_at_ms, label.account, label.counterparty, label.tx_time_ms) == (
        NOW,
        "C1",
        "M2",
        NOW - 5,
    )
    assert label.label_id == label_id_of("t-1", 1, "chargeback", NOW)
    assert label_key(label) == b"C1" and asked == [["t-1"]]
    past = msgspec.json.encode({"tx_id": "t-1", "label": 0, "labelled_at_ms": 5, "account": "A"})
    moved = parse_label(past, facts, now_ms=NOW)
    assert moved.labelled_at_ms == NOW  # a verdict could not have been known before it arrived
    future = msgspec.json.encode({"tx_id": "t-2", "label": 1, "labelled_at_ms": NOW + 9})
    kept = parse_label(future, lambda _ids: {}, now_ms=NOW)
    assert kept.labelled_at_ms == NOW + 9 and kept.account is None and label_key(kept) == b"t-2"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"tx_id": "t", "label": 2}', "label"),
        (b'{"tx_id": "t", "label": 1, "source": "psychic"}', "source"),
        (b'{"label": 1}', "tx_id"),
        (b"nope", None),
    ],
)
def test_an_invalid_label_names_its_field(raw: bytes, field: str | None) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_label(raw, lambda _ids: {}, now_ms=NOW)
    assert caught.value.field == field


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.close()


def test_scopes_parse_in_a_fixed_order_and_unknown_ones_are_refused() -> None:
    assert parse_scopes("read, decide") == ("decide", "read")
    with pytest.raises(ConfigError, match="admin"):
        parse_scopes("decide,admin")
    with pytest.raises(ConfigError):
        parse_scopes("")


def test_a_key_is_stored_hashed_and_checked_in_full(db: Database) -> None:
    new = create_key(db, "auth-service", ("decide", "read"))
    secret = new.token[len("fsk_") + 12 + 1 :]
    assert len(secret) == 43 and new.token.startswith(f"fsk_{new.key.key_id}_")
    stored = db.rows("SELECT key_id, name, scopes, secret_sha256 FROM api_keys")
    assert len(stored) == 1 and new.token not in repr(stored) and secret not in repr(stored)
    checker = KeyChecker(db, cache_s=0)
    key = checker.check(new.token)
    assert key is not None and key.scopes == ("decide", "read") and key.name == "auth-service"
    wrong = new.token[:-1] + ("A" if new.token[-1] != "A" else "B")
    assert checker.check(wrong) is None
    assert checker.check("fsk_000000000000_" + "x" * 43) is None  # no such id
    assert checker.check("Bearer " + new.token) is None and checker.check("") is None
    assert [k.key_id for k in list_keys(db)] == [new.key.key_id]


def test_a_revoked_key_stops_working_once_the_cache_expires(db: Database) -> None:
    new = create_key(db, "batch", ("label",))
    now = [100.0]
    checker = KeyChecker(db, cache_s=5.0, clock=lambda: now[0])
    assert checker.check(new.token) is not None
    assert revoke_key(db, new.key.key_id) and not revoke_key(db, new.key.key_id)
    known, key = checker.cached(new.token)
    assert known and key is not None  # within the cache time, as documented
    now[0] += 5.1
    known, _ = checker.cached(new.token)
    assert not known and checker.check(new.token) is None
    listed = list_keys(db)[0]
    assert listed.revoked_at_ms is not None and listed.revoked_at_ms <= time.time() * 1000


def test_key_names_are_plain(db: Database) -> None:
    with pytest.raises(ConfigError):
        create_key(db, "bad name\n", ("decide",))
