"""``fraudstream replay`` through the real broker: what is read back is the file, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from fraudstream.schema import decode_card, decode_labels, decode_paysim
from fraudstream.simulate import (
    PAYSIM_COLUMNS,
    CardSimulator,
    PaySimSimulator,
    card_table,
    paysim_table,
)

from ._kafka_util import read_topic

pytestmark = pytest.mark.integration


def run_cli(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replay_of_a_shuffled_paysim_file_arrives_in_event_time_order(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    records = PaySimSimulator(accounts=300, seed=8, fraud_rate=0.05).next_batch(4_000)
    for i, rec in enumerate(records):  # history files carry the id that labels refer to
        rec.txId = f"sim-8-{i}"
    table = paysim_table(PaySimSimulator(accounts=300, seed=8, fraud_rate=0.05).history(4_000))
    path = tmp_path / "shuffled.csv"
    pl.from_arrow(table).sample(fraction=1.0, shuffle=True, seed=3).write_csv(path)  # type: ignore[union-attr]
    topic = f"replay-{unique}"
    out = run_cli("replay", str(path), "--rate", "20000", "--topic", topic, bootstrap=bootstrap)
    assert out.returncode == 0, out.stderr
    assert "replayed 4,000 transactions" in out.stdout
    messages = read_topic(client, topic, expect=4_000)
    assert len(messages) == 4_000
    decoded, _, invalid = decode_paysim([m.value() for m in messages])
    assert invalid == []
    assert sorted(decoded, key=lambda r: (r.eventTimeMs, r.nameOrig, r.amount)) == sorted(
        records, key=lambda r: (r.eventTimeMs, r.nameOrig, r.amount)
    )
    per_partition: dict[int, list[int]] = defaultdict(list)
    for m, r in zip(messages, decoded, strict=True):
        assert m.key() == r.nameOrig.encode()  # key = account
        per_partition[m.partition()].append(r.eventTimeMs or 0)
    assert len(per_partition) > 1
    for times in per_partition.values():
        assert times == sorted(times)  # event-time order within every partition


def test_replay_of_card_data_with_speedup(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    sim = CardSimulator(customers=100, seed=2)
    path = tmp_path / "cards.parquet"
    pl.from_arrow(card_table(sim.next_columns(600), sim.start_ms)).write_parquet(path)  # type: ignore[union-attr]
    topic = f"replay-card-{unique}"
    out = run_cli(
        "replay", str(path), "--speedup", "86400000", "--topic", topic, bootstrap=bootstrap
    )
    assert out.returncode == 0, out.stderr
    messages = read_topic(client, topic, expect=600)
    decoded, _, invalid = decode_card([m.value() for m in messages])
    assert invalid == [] and len(decoded) == 600
    expected = pl.read_parquet(path)
    by_id = {r.txId: r for r in decoded}
    for row in expected.iter_rows(named=True):
        r = by_id[str(row["TRANSACTION_ID"])]
        assert r.customerId == str(row["CUSTOMER_ID"]) and r.amount == row["TX_AMOUNT"]
        assert r.isFraud == row["TX_FRAUD"]


KAGGLE_HEADER = ",".join(PAYSIM_COLUMNS[:11])  # step ... isFlaggedFraud
MAY_1_MS = 1_714_521_600_000  # 2024-05-01T00:00Z


def _kaggle_file(path: Path) -> None:
    """2,000 integer-looking amounts over steps 1-4, then a decimal one, then an ``N/A``."""
    kinds = ("PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT")
    rows = [
        f"{1 + i // 500},{kinds[i % 5]},{100 + i},C{i % 97},{5000 + i},{4900},M{i % 13},0,0,"
        f"{int(i % 400 == 3)},0"
        for i in range(2_000)
    ]
    rows += [
        "5,TRANSFER,987591.59,C1,987591.59,0.0,C2,0.0,0.0,1,0",
        "5,CASH_OUT,N/A,C3,1,0,C4,0,0,1,0",
    ]
    path.write_text(KAGGLE_HEADER + "\n" + "\n".join(rows) + "\n")


def test_replay_of_a_kaggle_file_skips_its_bad_row_and_dates_it_from_start(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    path = tmp_path / "kaggle.csv"
    _kaggle_file(path)
    topic = f"replay-kaggle-{unique}"
    out = run_cli(
        "replay", str(path), "--start", "2024-05-01", "--topic", topic, bootstrap=bootstrap
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    assert "replayed 2,001 transactions" in text and "skipped 1 bad row" in text
    assert "amount: 1 row (line 2003 'N/A'); expected a number >= 0" in text
    assert "event time 2024-05-01 01:00 UTC to 2024-05-01 05:00 UTC (from --start)" in text
    messages = read_topic(client, topic, expect=2_001)
    decoded, _, invalid = decode_paysim([m.value() for m in messages])
    assert invalid == [] and len(decoded) == 2_001
    assert max(r.amount for r in decoded) == 987591.59
    for r in decoded:  # step s at hour s of 2024-05-01, its rows spread over that hour
        assert (r.eventTimeMs or 0) // 3_600_000 == MAY_1_MS // 3_600_000 + r.step

    topic = f"replay-kaggle-auto-{unique}"
    before = time.time() * 1000
    out = run_cli("replay", str(path), "--topic", topic, bootstrap=bootstrap)
    assert out.returncode == 0, out.stdout + out.stderr
    decoded, _, invalid = decode_paysim(
        [m.value() for m in read_topic(client, topic, expect=2_001)]
    )
    times = [r.eventTimeMs or 0 for r in decoded]
    today = before - before % 86_400_000
    assert invalid == [] and today - 86_400_000 <= min(times) and max(times) < today
    assert all(t // 3_600_000 % 24 == r.step for t, r in zip(times, decoded, strict=True))


def test_replay_sends_the_labels_beside_the_file_shifted_like_the_transactions(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    from tests.unit.test_replay import MAY_1_MS, _relative_cards

    path, labels = _relative_cards(tmp_path)  # times relative to second 0; labels likewise
    tx_topic, label_topic = f"replay-tx-{unique}", f"replay-labels-{unique}"
    out = run_cli(
        "replay", str(path), "--start", "2024-05-01", "--topic", tx_topic,
        "--labels-topic", label_topic, bootstrap=bootstrap,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"replayed {len(labels):,} labels to {label_topic}" in " ".join(out.stdout.split())
    records, _, invalid = decode_card(
        [m.value() for m in read_topic(client, tx_topic, expect=6_000)]
    )
    assert invalid == [] and len(records) == 6_000
    messages = read_topic(client, label_topic, expect=len(labels))
    sent, _, bad = decode_labels([m.value() for m in messages])
    assert bad == [] and len(sent) == len(labels)
    by_id = {r.txId: r for r in records}
    relative = {m.tx_id: m.labelled_at_ms for m in labels}
    for m, label in zip(messages, sent, strict=True):
        tx = by_id[label.tx_id]
        assert label.labelled_at_ms == relative[label.tx_id] + MAY_1_MS
        assert label.labelled_at_ms > tx.eventTimeMs == label.tx_time_ms
        assert (label.account, label.counterparty) == (tx.customerId, tx.terminalId)
        assert m.key() == tx.customerId.encode() and m.timestamp()[1] == label.labelled_at_ms
