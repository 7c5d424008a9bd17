"""The one transaction-file reader behind ``replay`` and ``train DATA`` (schema._files)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer

from fraudstream.cli._replay import parse_start
from fraudstream.config import Settings
from fraudstream.errors import SchemaError
from fraudstream.model._data import read_history
from fraudstream.schema import decode_paysim
from fraudstream.schema._files import HOUR_MS, read_transactions, start_before
from fraudstream.simulate import load_replay
from tests.unit.test_replay import KAGGLE_HEADER

DAY_MS = 86_400_000


def _kaggle_rows(n: int, *, step_hours: int = 1) -> list[str]:
    """``n`` Kaggle rows with integer-looking amounts and balances, 4 frauds, over several steps."""
    kinds = ("PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT")
    return [
        f"{1 + i * step_hours // 500},{kinds[i % 5]},{100 + i},C{i % 300},{1000 + i},{900},"
        f"M{i % 70},0,0,{int(i % 500 == 7)},0"
        for i in range(n)
    ]


def _write(path: Path, header: str, rows: list[str], *, bom: bool = False) -> Path:
    path.write_text(("\ufeff" if bom else "") + header + "\n" + "\n".join(rows) + "\n")
    return path


def test_a_float_after_many_integer_looking_amounts_stays_a_float(tmp_path: Path) -> None:
    rows = [*_kaggle_rows(2_000), "5,TRANSFER,987591.59,C9,987591.59,0.0,C10,0.0,0.0,1,0"]
    path = _write(tmp_path / "kaggle.csv", KAGGLE_HEADER, rows)
    with pytest.raises(pl.exceptions.ComputeError, match="987591.59"):
        pl.read_csv(path)  # the user's failure: inference from the first rows only
    file = read_transactions(path)
    assert file.frame.schema["amount"] == pl.Float64 and file.skipped == 0
    assert file.frame["amount"][-1] == 987591.59 and file.frame["oldbalanceOrg"][-1] == 987591.59
    history = read_history(path, "paysim")
    assert len(history) == 2_001 and history.amount[-1] == 987591.59
    assert history.amount[:3].tolist() == [100.0, 101.0, 102.0]
    assert int(history.label.sum()) == 5


def test_na_amount_is_a_skipped_row_named_by_column_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _kaggle_rows(10)
    rows[3] = "1,TRANSFER,N/A,C3,10,0,C4,0,0,1,0"
    rows[6] = "1,PAYMENT,,C6,10,0,M4,0,0,0,0"
    rows[8] = "1,PAYMENT,12 EUR,C8,10,0,M4,0,0,0,0"
    path = _write(tmp_path / "na.csv", KAGGLE_HEADER, rows)
    with caplog.at_level(logging.WARNING):
        replay = load_replay(path)
    assert len(replay) == 7 and replay.file.skipped == 3
    (problem,) = replay.file.problems
    assert problem == (
        "amount: 3 rows (line 5 'N/A', line 8 '', line 10 '12 EUR'); expected a number >= 0"
    )
    assert "na.csv: skipped 3 of 10 rows with a missing or invalid value" in caplog.text
    records, _, invalid = decode_paysim([v for _, v in replay.messages(0, len(replay))])
    assert invalid == [] and len(records) == 7
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        history = read_history(path, "paysim")
    assert len(history) == 7 and problem in caplog.text
    assert sorted(history.tx_id) == sorted(f"row-{i}" for i in (0, 1, 2, 4, 5, 7, 9))


def test_a_required_null_or_invalid_label_is_skipped_for_training_only(tmp_path: Path) -> None:
    rows = _kaggle_rows(6)
    rows[1] = "1,PAYMENT,5.0,C1,10,0,M4,0,0,NA,0"
    rows[2] = "1,PAYMENT,5.0,C2,10,0,M4,0,0,2,0"
    rows[4] = "1,payment,5.0,C4,10,0,M4,0,0,1,null"
    path = _write(tmp_path / "labels.csv", KAGGLE_HEADER, rows)
    replay = load_replay(path)  # replay: a missing label is allowed, an invalid one is not
    assert len(replay) == 5
    assert replay.file.problems == ("isFraud: 1 row (line 4 '2'); expected 0 or 1",)
    history = read_history(path, "paysim")
    assert len(history) == 4
    assert history.label.tolist() == [0, 0, 1, 0] and history.kind[2] == 0  # 'payment' -> PAYMENT
    assert history.flagged.tolist() == [0, 0, 0, 0]


def test_no_usable_row_is_an_error_naming_the_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "words.csv", KAGGLE_HEADER, ["1,PAYMENT,ten,C1,1,0,M1,0,0,0,0"])
    with pytest.raises(SchemaError) as err:
        load_replay(path)
    assert str(err.value) == (
        "words.csv: no usable transaction (amount: 1 row (line 2 'ten'); expected a number >= 0)"
    )
    path = _write(
        tmp_path / "blank.csv",
        KAGGLE_HEADER,
        ["", "1,DEBIT,2,C1,1,0,M1,0,0,0,0", "", "1,WIRE,2,C1,1,0,M1,0,0,0,0"],
    )
    blank = load_replay(path)  # blank lines are not rows; line numbers still count them
    assert len(blank) == 1 and blank.file.rows_read == 2
    assert blank.file.problems[0].startswith("type: 1 row (line 5 'WIRE'); expected one of PAYMENT")
    path = _write(tmp_path / "empty.csv", KAGGLE_HEADER, [])
    with pytest.raises(SchemaError, match="empty.csv: no usable transaction .the file has no data"):
        read_history(path, "paysim")


def test_lowercase_headers_and_a_byte_order_mark_are_read_by_train_and_replay(
    tmp_path: Path,
) -> None:
    rows = _kaggle_rows(1_500, step_hours=3)
    plain = _write(tmp_path / "plain.csv", KAGGLE_HEADER, rows)
    odd = _write(
        tmp_path / "odd.csv", " " + KAGGLE_HEADER.lower().replace(",", ", "), rows, bom=True
    )
    assert (tmp_path / "odd.csv").read_bytes().startswith(b"\xef\xbb\xbf step, type")
    expected = read_history(plain, "paysim")
    got = read_history(odd, "paysim")
    assert got.account == expected.account and np.array_equal(got.amount, expected.amount)
    assert np.array_equal(got.event_time_ms, expected.event_time_ms)
    assert np.array_equal(got.new_balance_orig, expected.new_balance_orig)
    assert load_replay(odd).messages(0, 50) == load_replay(plain).messages(0, 50)


def test_missing_columns_are_named_exactly(tmp_path: Path) -> None:
    path = _write(tmp_path / "short.csv", "Step,amount,nameorig,isFraud", ["1,2.0,C1,0"])
    with pytest.raises(SchemaError) as err:
        read_history(path, "paysim")
    message = str(err.value)
    assert message.startswith("short.csv has no column for type, nameDest: the paysim format")
    assert "the file's columns are Step, amount, nameorig, isFraud" in message
    assert "FRAUDSTREAM_REPLAY__COLUMNS__TYPE=<your column>" in message
    path = _write(tmp_path / "nolabel.csv", "step,type,amount,nameOrig,nameDest", ["1,DEBIT,2,C,M"])
    assert len(load_replay(path)) == 1  # replay needs no label
    with pytest.raises(SchemaError, match="nolabel.csv has no column for isFraud: "):
        read_history(path, "paysim")
    cards = tmp_path / "cards.csv"
    cards.write_text("TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n2018-04-01,1,2,3,0\n")
    with pytest.raises(SchemaError, match="looks like the card format .train --format card."):
        read_history(cards, "paysim")


def test_the_settings_mapping_is_honoured_by_train_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "Stunde,Art,Betrag,Konto,Empfaenger,Betrug"
    rows = [
        f"{i // 40},{('PAYMENT', 'TRANSFER')[i % 2]},{i}.5,C{i % 9},M{i % 4},0" for i in range(120)
    ]
    rows[5] = "0,TRANSFER,7.5,C5,M1,1"
    path = _write(tmp_path / "bank.csv", header, rows)
    for target, source in {
        "STEP": "stunde",
        "TYPE": "Art",
        "AMOUNT": "BETRAG",
        "NAMEORIG": "Konto",
        "NAMEDEST": "Empfaenger",
        "ISFRAUD": "Betrug",
    }.items():
        monkeypatch.setenv(f"FRAUDSTREAM_REPLAY__COLUMNS__{target}", source)
    columns = Settings().replay.columns
    with pytest.raises(SchemaError, match="has no column for"):
        read_history(path, "paysim")
    history = read_history(path, "paysim", columns=columns)
    assert len(history) == 120 and history.amount[1] == 1.5 and history.label[5] == 1
    assert history.step.tolist() == [i // 40 for i in range(120)]
    records, _, invalid = decode_paysim([v for _, v in load_replay(path, columns).messages(0, 3)])
    assert invalid == [] and [r.nameOrig for r in records] == ["C0", "C1", "C2"]


def test_train_and_replay_share_one_time_axis_spread_over_each_step(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.csv", KAGGLE_HEADER, _kaggle_rows(2_000, step_hours=4))
    history = read_history(path, "paysim")
    replay = load_replay(path, start_ms=0)
    assert np.array_equal(history.event_time_ms, replay.event_time_ms)
    steps = history.step
    assert steps.min() == 1 and steps.max() == 16
    first = history.event_time_ms[steps == 2]
    assert first[0] == 2 * HOUR_MS and np.all(np.diff(first) == HOUR_MS // len(first))
    assert np.array_equal(history.event_time_ms // HOUR_MS, steps)  # each step within its hour
    shifted = load_replay(path, start_ms=1_714_521_600_000)  # 2024-05-01T00:00Z
    assert np.array_equal(shifted.event_time_ms - 1_714_521_600_000, replay.event_time_ms)


def test_our_own_timestamps_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "ours.csv"
    path.write_text(
        f"{KAGGLE_HEADER},eventTimeMs,fraudScenario\n"
        "0,PAYMENT,1.5,C1,,,M1,,,0,0,1700000000500,\n"
        "0,TRANSFER,2.5,C2,,,C3,,,1,0,1700000000100,mule\n"
        "0,DEBIT,3.5,C3,,,M1,,,0,0,N/A,\n"
    )
    replay = load_replay(path, start_ms=5_000)
    assert replay.event_time_ms.tolist() == [5_000 + 2 * HOUR_MS // 3, 1700000000100, 1700000000500]
    assert replay.file.relative_time  # the row without eventTimeMs falls back on its step
    records, _, invalid = decode_paysim([v for _, v in replay.messages(0, 3)])
    assert invalid == [] and records[1].fraudScenario == "mule" and records[0].oldbalanceOrg is None


def test_start_option_and_the_auto_start() -> None:
    now = int(dt.datetime(2024, 5, 10, 15, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert parse_start("now", now) == now
    assert parse_start("2024-05-01", now) == 1_714_521_600_000
    assert parse_start("2024-05-01T08:00+02:00", now) == 1_714_521_600_000 + 6 * HOUR_MS
    with pytest.raises(typer.BadParameter, match="ISO date"):
        parse_start("yesterday", now)
    auto = parse_start("auto", now)
    assert callable(auto) and auto is not None
    today = int(dt.datetime(2024, 5, 10, tzinfo=dt.UTC).timestamp() * 1000)
    span = 743 * HOUR_MS + HOUR_MS - 1  # Kaggle's steps 1-743 end before hour 744
    start = start_before(now)(span)
    assert start % DAY_MS == 0 and start + span < today <= now
    assert start_before(now)(0) == today - DAY_MS


def test_auto_start_dates_a_kaggle_file_before_today_at_its_hours(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.csv", KAGGLE_HEADER, _kaggle_rows(3_000, step_hours=10))
    now = int(dt.datetime(2024, 5, 10, 15, 30, tzinfo=dt.UTC).timestamp() * 1000)
    replay = load_replay(path, start_ms=start_before(now))
    times = replay.event_time_ms
    assert dt.datetime.fromtimestamp(times[0] / 1000, dt.UTC) == dt.datetime(
        2024, 5, 7, 1, tzinfo=dt.UTC
    )  # step 1 at 01:00; the file spans 60 steps (2.5 days) and ends before May 10
    assert times[-1] < now - 15 * HOUR_MS and np.all(np.diff(times) >= 0)
    records, _, _ = decode_paysim([v for _, v in replay.messages(0, len(replay))])
    assert all((r.eventTimeMs or 0) // HOUR_MS % 24 == r.step % 24 for r in records)


def test_the_detectors_live_window_sees_a_replayed_kaggle_file(tmp_path: Path) -> None:
    """The window line shows the last 30 s of event time: with a step's rows at one instant
    (the old replay), every window closed before the next step was empty."""
    from fraudstream.stream import SlidingWindow

    path = _write(tmp_path / "k.csv", KAGGLE_HEADER, _kaggle_rows(4_000))
    replay = load_replay(path, start_ms=1_714_521_600_000)
    window = SlidingWindow(30_000, 1_000)
    shown: list[int] = []
    for lo in range(0, len(replay), 250):  # batches as the detector polls them
        t = replay.event_time_ms[lo : lo + 250]
        n = len(t)
        window.add(t, np.ones(n), np.zeros(n, bool), np.zeros(n, bool))
        shown += [w.transactions for w in window.advance()]
    assert len(shown) > 100 and sum(n > 0 for n in shown) > 0.9 * len(shown)
    assert max(shown) == 500 * 30_000 // HOUR_MS + 1  # 500 rows an hour: ~4 in 30 s
