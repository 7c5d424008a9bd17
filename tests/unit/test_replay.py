from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import Result

from fraudstream.config import Settings
from fraudstream.errors import ConfigError, SchemaError
from fraudstream.schema import LabelMessage, decode_card, decode_label, decode_paysim
from fraudstream.simulate import (
    CardSimulator,
    PaySimSimulator,
    SpeedupPacer,
    card_table,
    label_table,
    labels_path,
    load_replay,
    paysim_table,
    simulate_labels,
    write_history,
    write_labels,
)
from tests.unit.test_simulate import FakeTime
from tests.unit.test_simulate_labels import FAST, FakeProducer, check_label_order, use_fake_kafka


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    return use_fake_kafka(monkeypatch)


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
    fdh = pl.read_parquet_schema(FDH)
    assert dict(list(ours.schema.items())[: len(fdh)]) == dict(fdh)  # the handbook's, as its
    assert ours.columns[len(fdh) :] == ["TX_CATEGORY", "TX_CHANNEL"]  # then our two
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


MAY_1_MS = 1_714_521_600_000  # 2024-05-01T00:00Z


def test_offset_is_the_shift_of_relative_times_only(tmp_path: Path) -> None:
    kaggle = tmp_path / "kaggle.csv"
    kaggle.write_text(f"{KAGGLE_HEADER}\n1,PAYMENT,9.5,C3,170.0,160.5,M4,0.0,0.0,0,0\n")
    assert load_replay(kaggle, start_ms=1_000).offset_ms == 1_000
    assert load_replay(kaggle, start_ms=lambda span: 7_000 + span).offset_ms == 7_000 + 3_600_000
    ours = tmp_path / "ours.parquet"
    write_history(lambda n: paysim_table(PaySimSimulator(seed=1).history(n)), ours, 50)
    assert load_replay(ours, start_ms=1_000).offset_ms == 0  # its own eventTimeMs are kept


def _relative_cards(tmp_path: Path) -> tuple[Path, list[LabelMessage]]:
    """Card history without TX_DATETIME (times relative) and its labels, relative too, without
    account or counterparty: ``cards.parquet`` and ``cards.labels.parquet`` beside it."""
    cols = CardSimulator(customers=200, seed=2).next_columns(6_000)
    path = tmp_path / "cards.parquet"
    pl.from_arrow(card_table(cols, 0).drop_columns(["TX_DATETIME"])).write_parquet(path)  # type: ignore[union-attr]
    labels = simulate_labels(
        [str(i) for i in cols.tx_id.tolist()],
        [None] * len(cols),
        cols.time_s * 1000,
        (cols.scenario > 0).astype(np.int8),
        positions=cols.tx_id,
        mix=FAST,
        seed=2,
    )
    write_labels(label_table(labels), labels_path(path))
    return path, labels


def test_shift_labels_moves_them_with_the_transactions_and_completes_them(
    tmp_path: Path,
) -> None:
    path, labels = _relative_cards(tmp_path)
    source = load_replay(path, start_ms=MAY_1_MS)
    shifted = source.shift_labels(labels)
    facts = source.lookup({m.tx_id for m in labels})
    assert len(shifted) == len(labels) > 20 and len(facts) == len({m.tx_id for m in labels})
    for old, new in zip(labels, shifted, strict=True):
        account, terminal, event_ms = facts[old.tx_id]
        assert new.labelled_at_ms == old.labelled_at_ms + MAY_1_MS
        assert new.tx_time_ms == (old.tx_time_ms or 0) + MAY_1_MS == event_ms
        assert (new.account, new.counterparty) == (account, terminal) != (None, None)
        assert new.label_id != old.label_id
    assert load_replay(path, start_ms=0).shift_labels(labels)[0].label_id == labels[0].label_id


def _invoke(*args: str) -> Result:
    from typer.testing import CliRunner

    from fraudstream.cli._app import app  # the fixture's imports registered the commands

    return CliRunner().invoke(app, ["replay", *args, "--topic", "tx", "--rate", "0"])


def test_replay_sends_the_labels_beside_the_file_in_order(
    fake_kafka: FakeProducer, tmp_path: Path
) -> None:
    path, labels = _relative_cards(tmp_path)
    result = _invoke(str(path), "--start", "2024-05-01")
    assert result.exit_code == 0, result.output
    assert check_label_order(fake_kafka.sent, "fraud-labels") == len(labels)
    assert f"replayed {len(labels):,} labels" in result.output
    sent = [decode_label(v) for t, _, v, _ in fake_kafka.sent if t == "fraud-labels"]
    assert {m.labelled_at_ms - MAY_1_MS for m in sent} == {m.labelled_at_ms for m in labels}
    assert all(m.account and m.counterparty and m.tx_time_ms for m in sent)

    fake_kafka.sent.clear()
    result = _invoke(str(path), "--no-labels")
    assert result.exit_code == 0 and {t for t, *_ in fake_kafka.sent} == {"tx"}
    fake_kafka.sent.clear()
    result = _invoke(str(path), "--count", "3000")
    produced = check_label_order(fake_kafka.sent, "fraud-labels")
    assert 0 < produced < len(labels) and "not yet due were left out" in result.output
    result = _invoke(str(path), "--labels", str(tmp_path / "none.csv"))
    # rich wraps the message at the terminal's width, wherever the temporary path ends
    assert result.exit_code == 1 and "none.csv not found" in " ".join(result.output.split())
