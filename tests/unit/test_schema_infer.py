"""``fraudstream schema infer`` (schema._infer) on the public credit-card dataset's layout made from
our card simulator, PaySim's Kaggle layout and the handbook's; ``schema check`` and ``sample``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fraudstream.cli import _schema  # noqa: F401  (registers the schema commands)
from fraudstream.cli._app import app
from fraudstream.schema._cc_layout import CATEGORIES, CREDIT_CARD_COLUMNS, credit_card_layout
from fraudstream.schema._declare import load_schema
from fraudstream.schema._files import read_header, read_transactions
from fraudstream.schema._infer import Proposal, infer_schema
from fraudstream.simulate import (
    PAYSIM_COLUMNS,
    CardSimulator,
    PaySimSimulator,
    card_table,
    paysim_table,
)

runner = CliRunner()


def credit_card_sample(path: Path, rows: int = 3_000, seed: int = 5) -> pl.DataFrame:
    """Simulated card payments in the public credit-card dataset's layout, written to ``path``."""
    sim = CardSimulator(customers=300, seed=seed)
    handbook = pl.DataFrame(pl.from_arrow(card_table(sim.next_columns(rows), sim.start_ms)))
    frame = credit_card_layout(handbook, sim.customer_xy, sim.terminal_xy)
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return frame


def _roles(proposal: Proposal) -> dict[str, str]:
    return {name: spec.describe() for name, spec in proposal.schema.fields.items()}


def _round_trip(proposal: Proposal, tmp_path: Path) -> None:
    path = tmp_path / "proposed.toml"
    path.write_text(proposal.to_toml("data"))
    assert load_schema(path).model_dump() == proposal.schema.model_dump()


def test_the_generated_sample_has_the_public_layout(tmp_path: Path) -> None:
    frame = credit_card_sample(tmp_path / "cc.csv")
    assert tuple(frame.columns) == CREDIT_CARD_COLUMNS
    assert set(frame["category"].unique()) <= set(CATEGORIES)
    assert (
        frame["lat"].is_between(-90, 90).all() and frame["merch_long"].is_between(-180, 180).all()
    )
    assert 0 < frame["is_fraud"].sum() < frame.height
    assert (
        frame["trans_num"].n_unique() == frame.height
        and frame["trans_num"].str.len_chars().max() == 32
    )
    parsed = frame["trans_date_trans_time"].str.to_datetime().dt.epoch("s")
    assert (parsed == frame["unix_time"]).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infer_on_the_credit_card_layout(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cc{suffix}"
    frame = credit_card_sample(path)
    proposal = infer_schema(read_header(path, 10_000))
    assert proposal.schema.format == "card"
    assert _roles(proposal) == {
        "trans_num": "tx_id",
        "unix_time": "event_time (s)",
        "cc_num": "account",
        "merchant": "counterparty",
        "amt": "amount",
        "is_fraud": "label",
        "category": "extra categorical",
        "lat": "extra latitude of location",
        "long": "extra longitude of location",
        "city_pop": "extra numeric",
        "merch_lat": "extra latitude of merch",
        "merch_long": "extra longitude of merch",
    }
    assert list(proposal.unplaced) == ["trans_date_trans_time"]
    _round_trip(proposal, tmp_path)
    read = read_transactions(path, schema=proposal.schema)
    assert len(read) == frame.height and read.skipped == 0
    ordered = frame.sort("unix_time", maintain_order=True)
    assert np.array_equal(read.event_time_ms, ordered["unix_time"].to_numpy() * 1000)
    assert read.frame["category"].to_list() == ordered["category"].to_list()
    assert read.frame["TX_AMOUNT"].to_list() == ordered["amt"].to_list()


def test_infer_on_paysims_kaggle_layout(tmp_path: Path) -> None:
    path = tmp_path / "kaggle.csv"
    table = paysim_table(PaySimSimulator(accounts=200, seed=4).history(2_000))
    pl.DataFrame(pl.from_arrow(table)).select(PAYSIM_COLUMNS[:11]).write_csv(path)
    proposal = infer_schema(read_header(path, 10_000))
    assert proposal.schema.format == "paysim"
    assert _roles(proposal) == {
        "step": "event_time (step_hours)",
        "nameOrig": "account",
        "nameDest": "counterparty",
        "amount": "amount",
        "type": "type",
        "oldbalanceOrg": "old_balance_orig",
        "newbalanceOrig": "new_balance_orig",
        "oldbalanceDest": "old_balance_dest",
        "newbalanceDest": "new_balance_dest",
        "isFraud": "label",
        "isFlaggedFraud": "flagged",
    }
    assert proposal.unplaced == {}
    _round_trip(proposal, tmp_path)
    declared, plain = read_transactions(path, schema=proposal.schema), read_transactions(path)
    columns = sorted(plain.frame.columns)  # as read by the names alone
    assert declared.frame.select(columns).equals(plain.frame.select(columns))
    assert np.array_equal(declared.event_time_ms, plain.event_time_ms)


def test_infer_on_the_handbooks_layout(tmp_path: Path) -> None:
    path = tmp_path / "handbook.parquet"
    sim = CardSimulator(customers=200, seed=6)
    pl.DataFrame(pl.from_arrow(card_table(sim.next_columns(2_000), sim.start_ms))).write_parquet(
        path
    )
    proposal = infer_schema(read_header(path, 10_000))
    assert proposal.schema.format == "card"
    assert _roles(proposal) == {
        "TRANSACTION_ID": "tx_id",
        "TX_DATETIME": "event_time (iso)",
        "CUSTOMER_ID": "account",
        "TERMINAL_ID": "counterparty",
        "TX_AMOUNT": "amount",
        "TX_FRAUD": "label",
        "TX_FRAUD_SCENARIO": "scenario",
        "TX_CATEGORY": "extra categorical",  # the simulator's own two columns
        "TX_CHANNEL": "extra categorical",
    }
    assert set(proposal.unplaced) == {"TX_TIME_SECONDS", "TX_TIME_DAYS"}
    _round_trip(proposal, tmp_path)
    declared = read_transactions(path, schema=proposal.schema)
    assert np.array_equal(declared.event_time_ms, read_transactions(path).event_time_ms)


def test_units_from_magnitudes_and_what_fits_nothing(tmp_path: Path) -> None:
    sample = pl.DataFrame(
        {
            "ts": ["1522541023000", "1522541100000"],
            "card": ["c1", "c2"],
            "shop": ["m1", "m2"],
            "value": ["3.5", "7"],
            "note": ["free text one", "free text two"],
            "zip_code": ["12345", "12345"],
            "weird_lat": ["40.1", "41.2"],
            "empty": [None, "na"],
        }
    )
    proposal = infer_schema(sample)
    roles = _roles(proposal)
    assert roles["ts"] == "event_time (ms)" and roles["card"] == "account"
    assert roles["value"] == "amount" and roles["zip_code"] == "extra categorical"
    assert set(proposal.unplaced) == {"shop", "note", "weird_lat", "empty"}
    assert "an id or free text?" in proposal.unplaced["note"]
    assert proposal.unplaced["weird_lat"] == "a latitude or longitude without its other half"
    small = infer_schema(pl.DataFrame({"time": ["5", "9"]}))
    assert "too small for a date, declare the unit" in small.unplaced["time"]


def test_cli_sample_infer_and_check(tmp_path: Path) -> None:
    data, toml = tmp_path / "cc.csv", tmp_path / "cc.toml"
    made = runner.invoke(app, ["schema", "sample", str(data), "--rows", "1500"])
    assert made.exit_code == 0, made.output
    assert pl.read_csv(data).height == 1_500
    inferred = runner.invoke(app, ["schema", "infer", str(data), "--out", str(toml)])
    assert inferred.exit_code == 0, inferred.output
    assert load_schema(toml).fields["amt"].role == "amount"
    checked = runner.invoke(app, ["schema", "check", str(data), "--schema", str(toml)])
    assert checked.exit_code == 0, checked.output
    assert "cc.csv: card format, 1,500 of 1,500 rows usable" in checked.output
    assert "not read: trans_date_trans_time" in checked.output
    toml.write_text(toml.read_text().replace('unit = "s"', 'unit = "sec"'))
    bad = runner.invoke(app, ["schema", "check", str(data), "--schema", str(toml)])
    assert bad.exit_code != 0
    assert "field 'unix_time': unknown unit 'sec'" in str(bad.exception)
