"""The schema declaration (schema._declare, schema._resolve): every error names the field (and, for
data, the line), the roles' names, extra fields carried through read_transactions, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer

from fraudstream.cli._schema_opts import resolve_schema
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema._declare import SchemaDeclaration, declare, load_schema
from fraudstream.schema._files import read_transactions

CARD = "cc_num,merchant,amt,unix_time,is_fraud,category,lat,long,online\n"
ROWS = [
    "4001,shop_1,12.50,1522541023,0,grocery_pos,40.1,-100.2,yes",
    "4002,shop_2,99.00,1522541511,1,travel,41.0,-101.5,no",
    "4001,shop_2,3.10,1522541100,0,grocery_pos,40.1,-100.2,yes",
]
DECLARED = """
[fields]
cc_num = "customerId"
merchant = "merchant"
amt = "TX_AMOUNT"
unix_time = { role = "event_time", unit = "s" }
is_fraud = "label"
category = "categorical"
lat = { kind = "latitude", pair = "customer" }
long = { kind = "longitude", pair = "customer" }
online = "boolean"
"""


def _file(tmp_path: Path, rows: list[str] = ROWS, header: str = CARD) -> Path:
    path = tmp_path / "cards.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.toml"
    path.write_text(text)
    return path


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        declare(__import__("tomllib").loads(text), "schema.toml")
    return str(err.value)


def test_a_declared_card_file_reads_roles_and_extras(tmp_path: Path) -> None:
    read = read_transactions(_file(tmp_path), schema=load_schema(_toml(tmp_path, DECLARED)))
    assert read.format == "card" and len(read) == 3
    frame = read.frame
    assert frame["TX_AMOUNT"].to_list() == [12.5, 3.1, 99.0]  # event-time order
    assert frame["CUSTOMER_ID"].to_list() == ["4001", "4001", "4002"]
    assert read.event_time_ms.tolist() == [1_522_541_023_000, 1_522_541_100_000, 1_522_541_511_000]
    assert frame["TX_DATETIME"].dt.epoch("ms").to_list() == read.event_time_ms.tolist()
    assert read.extras == {
        "category": "categorical",
        "lat": "latitude",
        "long": "longitude",
        "online": "boolean",
    }
    assert frame["category"].to_list() == ["grocery_pos", "grocery_pos", "travel"]
    assert frame["online"].to_list() == [True, True, False]
    assert frame.schema["lat"] == pl.Float64 and frame["long"].to_list()[2] == -101.5


@pytest.mark.parametrize("name", ["account", "customerId", "CUSTOMER_ID", "customer", "card"])
def test_targets_accept_roles_message_fields_and_file_columns(tmp_path: Path, name: str) -> None:
    columns = {name: "cc_num", "terminalId": "merchant", "amount": "amt", "isFraud": "is_fraud"}
    schema = declare({"fields": {"unix_time": {"role": "event_time", "unit": "s"}}})
    read = read_transactions(_file(tmp_path), columns=columns, schema=schema)
    assert read.format == "card" and read.frame["CUSTOMER_ID"].to_list()[-1] == "4002"
    assert read.frame["TX_FRAUD"].to_list() == [0, 0, 1]


def test_a_mapped_event_time_in_ms_is_used_for_card_data(tmp_path: Path) -> None:
    path = _file(tmp_path, ["1,7,5.0,1522541023000,0", "2,8,6.0,1522541000000,1"], "c,t,a,ms,f\n")
    columns = {"customerId": "c", "terminalId": "t", "amount": "a", "eventTimeMs": "ms"}
    read = read_transactions(path, columns=columns)
    assert read.format == "card"
    assert read.event_time_ms.tolist() == [1_522_541_000_000, 1_522_541_023_000]


@pytest.mark.parametrize(
    ("unit", "cells", "expected_ms"),
    [
        ("ms", "1522541023000", 1_522_541_023_000),
        ("s", "1522541023.5", 1_522_541_023_500),
        ("iso", "2018-04-01 00:03:43", 1_522_541_023_000),
        ("iso", "2018-04-01T02:03:43+02:00", 1_522_541_023_000),
    ],
)
def test_every_absolute_unit_gives_the_same_time_in_both_formats(
    tmp_path: Path, unit: str, cells: str, expected_ms: int
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"who,whom,amt,kind,when\nC1,M1,5,PAYMENT,{cells}\n")
    fields = {"who": "account", "whom": "counterparty", "amt": "amount"}
    fields["when"] = {"role": "event_time", "unit": unit}  # type: ignore[assignment]
    card = read_transactions(path, schema=declare({"fields": fields}))
    paysim = read_transactions(path, schema=declare({"fields": {**fields, "kind": "type"}}))
    assert (card.format, paysim.format) == ("card", "paysim")
    assert card.event_time_ms.tolist() == paysim.event_time_ms.tolist() == [expected_ms]
    assert paysim.frame["eventTimeMs"].to_list() == [expected_ms]


def test_step_hours_and_seconds_from_the_start_are_relative(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("who,whom,amt,kind,t\nC1,M1,5,PAYMENT,2\nC2,M1,5,PAYMENT,0\n")
    base = {"who": "account", "whom": "counterparty", "amt": "amount"}
    hours = {**base, "kind": "type", "t": {"role": "event_time", "unit": "step_hours"}}
    paysim = read_transactions(path, schema=declare({"fields": hours}), start_ms=1_000)
    assert paysim.relative_time and paysim.event_time_ms.tolist() == [1_000, 1_000 + 2 * 3_600_000]
    seconds = {**base, "t": {"role": "event_time", "unit": "s_from_start"}}
    card = read_transactions(path, schema=declare({"fields": seconds}), start_ms=1_000)
    assert card.relative_time and card.event_time_ms.tolist() == [1_000, 3_000]


def test_unknown_role() -> None:
    message = _error('[fields]\namt = "amout"')
    assert message.startswith(
        "schema.toml: field 'amt': unknown role 'amout' (did you mean amount?); choose a role"
    )
    assert "card only: customerId" in message and "PaySim only: step" in message


def test_unknown_target_of_a_column_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="column mapping: unknown target field 'color' .for"):
        read_transactions(_file(tmp_path), columns={"color": "amt"})


def test_bad_unit_and_a_missing_or_misplaced_unit() -> None:
    assert _error('[fields]\nt = { role = "event_time", unit = "sec" }') == (
        "schema.toml: field 't': unknown unit 'sec'; choose from ms, s, iso, step_hours, "
        "s_from_start"
    )
    assert _error('[fields]\nt = "event_time"') == (
        "schema.toml: field 't': event_time needs a unit: one of ms, s, iso, step_hours, "
        "s_from_start"
    )
    assert _error('[fields]\na = { role = "amount", unit = "s" }') == (
        "schema.toml: field 'a': a unit is only for the event_time role, not amount"
    )
    assert _error('[fields]\nt = { role = "step", unit = "s" }') == (
        "schema.toml: field 't': step is in unit step_hours, not s"
    )


def test_bad_kind_and_bad_types() -> None:
    assert _error('[fields]\nc = { kind = "cat" }') == (
        "schema.toml: field 'c': unknown kind 'cat'; choose from categorical, numeric, boolean, "
        "latitude, longitude"
    )
    assert _error("[fields]\nc = 5") == (
        "schema.toml: field 'c': expected a role name or a table such as \"amount\" or "
        '{ role = "event_time", unit = "s" }, got 5'
    )
    assert _error('[fields]\nt = { role = "event_time", unit = 5 }') == (
        "schema.toml: field 't': unknown unit 5; choose from ms, s, iso, step_hours, s_from_start"
    )
    assert _error('[fields]\nc = { role = "amount", colour = "red" }') == (
        "schema.toml: field 'c': unknown key 'colour'; expected role, unit, kind, pair"
    )
    assert _error('format = "csv"') == "schema.toml: unknown format 'csv'; choose from paysim, card"
    assert _error('[fields]\nc = { role = "amount", kind = "numeric" }') == (
        "schema.toml: field 'c': a field has a role or a kind (an extra field), not both or neither"
    )


def test_duplicate_role() -> None:
    assert _error('[fields]\namt = "amount"\nvalue = "TX_AMOUNT"') == (
        "schema.toml: fields 'amt' and 'value' both have role amount; give each role to one field"
    )


def test_role_not_valid_for_the_declared_or_implied_format() -> None:
    assert _error('format = "card"\n[fields]\nkind = "type"') == (
        "schema.toml: field 'kind': type is not a role of the card format (only of paysim)"
    )
    assert _error('format = "paysim"\n[fields]\nt = { role = "event_time", unit = "s_from_start" }')
    message = _error('[fields]\nwho = "customerId"\nbal = "oldbalanceOrg"')
    assert message == (
        "schema.toml: field 'bal' (oldbalanceOrg) is of the paysim format, field 'who' of the "
        "card one; declare the format and its roles only"
    )


def test_location_pairs_need_both_halves() -> None:
    assert _error('[fields]\nlat = { kind = "latitude", pair = "home" }') == (
        "schema.toml: pair 'home' ('lat') needs one latitude and one longitude, has latitude"
    )
    assert _error('[fields]\nlat = "latitude"') == (
        "schema.toml: field 'lat': latitude and longitude need a pair (the location's name), "
        "others none"
    )


def test_missing_column(tmp_path: Path) -> None:
    schema = load_schema(_toml(tmp_path, DECLARED.replace("amt =", "amount_usd =")))
    with pytest.raises(SchemaError) as err:
        read_transactions(_file(tmp_path), schema=schema)
    assert str(err.value).startswith(
        "schema.toml: field 'amount_usd' (amount) not in file cards.csv; its columns are cc_num, "
    )


def test_a_time_role_missing(tmp_path: Path) -> None:
    schema = load_schema(_toml(tmp_path, DECLARED.replace("unix_time =", "# unix_time =")))
    with pytest.raises(SchemaError) as err:
        read_transactions(_file(tmp_path), schema=schema)
    message = str(err.value)
    assert message.startswith(
        "cards.csv has no column for the event time (TX_DATETIME or TX_TIME_SECONDS): the card "
    )
    assert 'your_column = { role = "event_time", unit = "s" }' in message


def test_data_errors_name_the_field_and_the_line(tmp_path: Path) -> None:
    bad = DECLARED.replace('category = "categorical"', 'category = "numeric"')
    with pytest.raises(SchemaError) as err:
        read_transactions(_file(tmp_path), schema=load_schema(_toml(tmp_path, bad)))
    assert str(err.value) == (
        "cards.csv: no usable transaction (field 'category' (extra numeric): 3 rows (line 2 "
        "'grocery_pos', line 3 'travel', line 4 'grocery_pos'); expected a number)"
    )
    iso = DECLARED.replace('unit = "s"', 'unit = "iso"')
    with pytest.raises(SchemaError, match=r"field 'unix_time' \(event_time \(iso\)\): 3 rows"):
        read_transactions(_file(tmp_path), schema=load_schema(_toml(tmp_path, iso)))
    rows = [*ROWS[:2], "4003,shop_3,4.0,1522541600,0,home,95.0,-100.0,maybe"]
    read = read_transactions(_file(tmp_path, rows), schema=load_schema(_toml(tmp_path, DECLARED)))
    assert len(read) == 2 and read.problems == (
        "field 'lat' (extra latitude of customer): 1 row (line 4 '95.0'); "
        "expected a latitude in degrees, -90 to 90",
        "field 'online' (extra boolean): 1 row (line 4 'maybe'); "
        "expected true/false, yes/no, t/f, y/n or 1/0",
    )


def test_an_extra_cannot_shadow_a_column_of_the_format(tmp_path: Path) -> None:
    path = _file(tmp_path, ["1,2,3.0,1522541023,0,x,1,1,1"], CARD.replace("category", "TX_FRAUD"))
    schema = load_schema(_toml(tmp_path, DECLARED.replace("category =", "TX_FRAUD =")))
    schema = schema.with_fields({"is_fraud": "numeric"}, "test")
    with pytest.raises(SchemaError, match="field 'TX_FRAUD' is declared extra, but TX_FRAUD is"):
        read_transactions(path, schema=schema)


def test_the_file_and_format_arguments_must_agree(tmp_path: Path) -> None:
    schema = load_schema(_toml(tmp_path, DECLARED))
    with pytest.raises(SchemaError) as err:
        read_transactions(_file(tmp_path), "paysim", schema=schema)
    assert str(err.value) == (
        "schema.toml declares cards.csv in the card format (field 'cc_num' (customerId)), "
        "not paysim"
    )


def test_toml_syntax_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"schema.toml: not valid TOML: .*line 1"):
        load_schema(_toml(tmp_path, "[fields\n"))
    with pytest.raises(ConfigError, match="schema file .*nope.toml not found"):
        load_schema(tmp_path / "nope.toml")


def test_settings_and_options_layer_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = _toml(tmp_path, DECLARED)
    monkeypatch.setenv("FRAUDSTREAM_SCHEMA__FILE", str(toml))
    schema = resolve_schema(None, Settings())
    assert schema.origin == "schema.toml" and schema.fields["amt"].role == "TX_AMOUNT"
    monkeypatch.setenv("FRAUDSTREAM_SCHEMA__FIELDS__LAT__KIND", "numeric")
    monkeypatch.setenv("FRAUDSTREAM_SCHEMA__FIELDS__LONG", "numeric")
    monkeypatch.setenv("FRAUDSTREAM_REPLAY__COLUMNS__TERMINAL_ID", "category")
    schema = resolve_schema(["amount=lat", "txId=online"], Settings())
    assert {n: s.describe() for n, s in schema.fields.items()} == {
        "cc_num": "account",
        "unix_time": "event_time (s)",
        "lat": "amount",  # --schema FIELD=COLUMN replaced amt and the inline lat
        "long": "extra numeric",
        "is_fraud": "label",
        "category": "counterparty",  # the legacy mapping replaced merchant
        "online": "tx_id",
    }
    assert schema.origin == (
        "schema.toml with FRAUDSTREAM_SCHEMA__FIELDS with FRAUDSTREAM_REPLAY__COLUMNS with --column"
    )
    read = read_transactions(_file(tmp_path), schema=schema)
    assert read.frame["TX_AMOUNT"].to_list() == [40.1, 40.1, 41.0]
    assert read.frame["TRANSACTION_ID"].to_list() == ["yes", "yes", "no"]


def test_schema_option_values(tmp_path: Path) -> None:
    toml = _toml(tmp_path, DECLARED)
    with pytest.raises(typer.BadParameter, match="give one schema file"):
        resolve_schema([str(toml), str(toml)], Settings())
    with pytest.raises(typer.BadParameter, match="expected FIELD=COLUMN, got 'amount='"):
        resolve_schema(["amount="], Settings())
    schema = resolve_schema([str(toml), "customerId=merchant", "terminalId=cc_num"], Settings())
    read = read_transactions(_file(tmp_path), schema=schema)
    assert read.frame["CUSTOMER_ID"].to_list() == ["shop_1", "shop_2", "shop_2"]


def test_an_empty_declaration_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "hb.csv"
    path.write_text("TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n2018-04-01 00:00:31,1,2,3.5\n")
    plain = read_transactions(path)
    declared = read_transactions(path, schema=SchemaDeclaration())
    assert plain.frame.equals(declared.frame) and plain.extras == declared.extras == {}
    assert np.array_equal(plain.event_time_ms, declared.event_time_ms)
