from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fraudstream.config import Settings
from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema import decode_card, decode_paysim
from fraudstream.simulate import (
    CardSimulator,
    PaySimSimulator,
    SpeedupPacer,
    card_table,
    load_replay,
    paysim_table,
    write_history,
)
from tests.unit.test_simulate import FakeTime

FDH = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fdh" / "transactions.parquet"
)
needs_fdh = pytest.mark.skipif(not FDH.is_file(), reason=f"handbook data absent ({FDH})")
KAGGLE_HEADER = (
    "step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,"
    "newbalanceDest,isFraud,isFlaggedFraud"
)


def test_kaggle_csv_is_ordered_by_step_keeping_file_order_within_a_step(tmp_path: Path) -> None:
    path = tmp_path / "paysim.csv"
    path.write_text(
        f"{KAGGLE_HEADER}\n"
        "2,TRANSFER,181.0,C1,181.0,0.0,C2,0.0,0.0,1,0\n"
        "1,PAYMENT,9839.64,C3,170136.0,160296.36,M4,0.0,0.0,0,0\n"
        "1,CASH_OUT,181.0,C5,181.0,0.0,C6,21182.0,0.0,1,0\n"
        "0,DEBIT,5.5,C7,10.0,4.5,M8,0.0,0.0,0,0\n"
    )
    replay = load_replay(path, start_ms=1_000)
    assert replay.format == "paysim" and len(replay) == 4
    # a step's rows are spread evenly over its hour, in file order
    assert replay.event_time_ms.tolist() == [1_000, 3_601_000, 5_401_000, 7_201_000]
    messages = replay.messages(0, 4)
    assert [k for k, _ in messages] == [b"C7", b"C3", b"C5", b"C1"]
    records, _, invalid = decode_paysim([v for _, v in messages])
    assert invalid == []
    assert [r.type for r in records] == ["DEBIT", "PAYMENT", "CASH_OUT", "TRANSFER"]
    assert records[3].amount == 181.0 and records[3].isFraud == 1
    assert records[1].eventTimeMs == 3_601_000 and records[1].oldbalanceOrg == 170136.0
    assert records[1].step == 1 and records[2].eventTimeMs == 5_401_000


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_our_paysim_output_replays_to_the_same_records(tmp_path: Path, suffix: str) -> None:
    records = PaySimSimulator(accounts=500, seed=2, fraud_rate=0.05).next_batch(3_000)
    for i, rec in enumerate(records):  # history files carry the id that labels refer to
        rec.txId = f"sim-2-{i}"
    sim = PaySimSimulator(accounts=500, seed=2, fraud_rate=0.05)
    path = tmp_path / f"history{suffix}"
    assert write_history(lambda n: paysim_table(sim.history(n)), path, 3_000, chunk=700) == 3_000
    replay = load_replay(path)
    decoded, _, invalid = decode_paysim([v for _, v in replay.messages(0, len(replay))])
    assert invalid == [] and decoded == records
    assert any(r.fraudScenario for r in decoded)


@needs_fdh
def test_handbook_parquet_is_replayed_in_time_order(tmp_path: Path) -> None:
    sample = pl.read_parquet(FDH, n_rows=5_000).sample(fraction=1.0, shuffle=True, seed=1)
    path = tmp_path / "fdh.parquet"
    sample.write_parquet(path)
    replay = load_replay(path)
    assert replay.format == "card"
    assert (np.diff(replay.event_time_ms) >= 0).all()
    expected = sample.sort("TX_DATETIME", maintain_order=True)  # ties keep file order
    records, _, invalid = decode_card([v for _, v in replay.messages(0, len(replay))])
    assert invalid == []
    assert [r.txId for r in records] == [str(i) for i in expected["TRANSACTION_ID"]]
    assert [r.amount for r in records] == expected["TX_AMOUNT"].to_list()
    assert [r.isFraud for r in records] == expected["TX_FRAUD"].to_list()
    frauds = {r.fraudScenario for r in records if r.isFraud}
    assert frauds <= {"high_amount", "compromised_terminal", "compromised_customer"} and frauds
    first = expected.row(0, named=True)
    assert records[0].eventTimeMs == int(first["TX_DATETIME"].timestamp() * 1000)


@needs_fdh
def test_our_card_output_reads_like_the_handbooks(tmp_path: Path) -> None:
    sim = CardSimulator(customers=300, seed=4)
    path = tmp_path / "cards.parquet"
    write_history(lambda n: card_table(sim.next_columns(n), sim.start_ms), path, 20_000)
    ours = pl.read_parquet(path)
    assert ours.schema == pl.read_parquet_schema(FDH)
    replay = load_replay(path)
    assert replay.format == "card" and len(replay) == 20_000
    assert (np.diff(replay.event_time_ms) >= 0).all()


def test_other_column_names_map_through_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sparkov.csv"
    path.write_text(
        "trans_num,unix_time,cc_num,merchant,amt,is_fraud\n"
        "b,1371816917,4613314721966,fraud_Kirlin,41.28,1\n"
        "a,1371816865,2291163933867244,fraud_Rippin,2.86,0\n"
    )
    with pytest.raises(SchemaError, match="FRAUDSTREAM_REPLAY__COLUMNS__"):
        load_replay(path)
    for target, source in {
        "CUSTOMER_ID": "cc_num",
        "TERMINAL_ID": "merchant",
        "TX_AMOUNT": "amt",
        "TX_TIME_SECONDS": "unix_time",
        "TX_FRAUD": "is_fraud",
        "TRANSACTION_ID": "trans_num",
    }.items():
        monkeypatch.setenv(f"FRAUDSTREAM_REPLAY__COLUMNS__{target}", source)
    replay = load_replay(path, Settings().replay.columns)
    records, _, invalid = decode_card([v for _, v in replay.messages(0, 2)])
    assert invalid == []
    assert [r.txId for r in records] == ["a", "b"]
    assert records[0].customerId == "2291163933867244" and records[0].terminalId == "fraud_Rippin"
    assert records[1].eventTimeMs == 1_371_816_917_000 and records[1].isFraud == 1
    with pytest.raises(ConfigError, match="unknown target"):
        load_replay(path, {"color": "amt"})
    with pytest.raises(SchemaError, match="not in file"):
        load_replay(path, {"TX_AMOUNT": "amount_usd"})


def test_unsupported_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_replay(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        load_replay(tmp_path / "x.json")
    with pytest.raises(ConfigError, match=".parquet or .csv"):
        write_history(
            lambda n: card_table(CardSimulator().next_columns(n), 0), tmp_path / "x.txt", 1
        )


def test_speedup_pacer_follows_event_time_faster() -> None:
    fake = FakeTime()
    pacer = SpeedupPacer(60.0, clock=fake.clock, sleep=fake.sleep)
    pacer.wait_until(1_000_000)  # the first record goes at once
    pacer.wait_until(1_000_000)
    pacer.wait_until(1_060_000)  # a minute of event time later: a second later
    assert fake.sleeps == [pytest.approx(1.0)]
    fake.now += 5.0  # running late: no sleep, no catching up by bursts beyond due records
    pacer.wait_until(1_120_000)
    assert len(fake.sleeps) == 1
    pacer.wait_until(1_600_000)  # due 10 s after the first
    assert fake.now == pytest.approx(10.0)
    with pytest.raises(ConfigError):
        SpeedupPacer(0.0)
