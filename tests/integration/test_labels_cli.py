"""``fraudstream labels import`` and the simulator's labels through the real broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from fraudstream.schema import decode_labels, decode_paysim
from fraudstream.simulate import (
    LABEL_COLUMNS,
    Delay,
    LabelMix,
    LiveLabels,
    PaySimSimulator,
    paysim_table,
    write_history,
)
from fraudstream.sinks import open_store

from ..unit.test_sinks import make_scored
from ._kafka_util import read_topic
from .test_replay import run_cli

pytestmark = pytest.mark.integration

CSV = (
    "Case_Ref,Customer,Outcome,Decided,Amount\n"
    "tx-1,C1,fraud,2024-05-01T10:00:00Z,12.5\n"  # line 2
    "tx-2,C2,genuine,2024-05-02,3\n"
    "tx-3,C3,perhaps,2024-05-02,3\n"  # line 4: no such verdict
    "tx-4,N/A,1,1714557600000,7\n"  # line 5: no account -> key = tx id
    ",C5,1,2024-05-03,1\n"  # line 6: no transaction id
    "tx-6,C6,0,not a date,1\n"  # line 7
)


def _import(path: Path, topic: str, bootstrap: str, *extra: str) -> Any:
    return run_cli(
        "labels",
        "import",
        str(path),
        "--tx-id-column",
        "case_ref",
        "--label-column",
        "OUTCOME",
        "--time-column",
        "decided",
        "--account-column",
        "customer",
        "--topic",
        topic,
        "--store-url",  # none: the labels lack counterparties, which a store would complete
        f"sqlite:///{path.parent / 'no-store.db'}",
        *extra,
        bootstrap=bootstrap,
    )


def test_import_maps_columns_skips_bad_rows_and_is_idempotent(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    path = tmp_path / "chargebacks.csv"
    path.write_text(CSV, encoding="utf-8")
    topic = f"labels-{unique}"
    out = _import(path, topic, bootstrap, "--keep-times")
    assert out.returncode == 0, out.stderr
    assert "read 6 rows" in out.stdout and "produced 3 labels" in out.stdout
    assert "skipped 3" in out.stdout
    shown = " ".join(out.stdout.split())
    assert "label (column 'Outcome'): 1 row (line 4 'perhaps')" in shown
    assert "tx_id (column 'Case_Ref'): 1 row (line 6 '')" in shown
    assert "labelled_at (column 'Decided'): 1 row (line 7 'not a date')" in shown
    first = read_topic(client, topic, expect=3)
    labels, _, invalid = decode_labels([m.value() for m in first])
    assert invalid == []
    by_tx = {m.tx_id: m for m in labels}
    assert sorted(by_tx) == ["tx-1", "tx-2", "tx-4"]
    assert (by_tx["tx-1"].label, by_tx["tx-2"].label, by_tx["tx-4"].label) == (1, 0, 1)
    assert all(m.source == "chargeback" for m in labels)
    assert by_tx["tx-1"].labelled_at_ms == 1_714_557_600_000 == by_tx["tx-4"].labelled_at_ms
    keys = {m.key() for m in first}
    assert keys == {b"C1", b"C2", b"tx-4"}  # account, else the transaction id

    again = _import(path, topic, bootstrap, "--keep-times")
    assert again.returncode == 0, again.stderr
    both = read_topic(client, topic, expect=6)
    ids = [m.label_id for m in decode_labels([m.value() for m in both])[0]]
    assert sorted(ids) == sorted([m.label_id for m in labels] * 2)  # the same ids, each twice

    other = _import(path, f"labels-d-{unique}", bootstrap, "--source", "dispute", "--keep-times")
    assert other.returncode == 0, other.stderr
    disputes = read_topic(client, f"labels-d-{unique}", expect=3)
    assert {m.source for m in decode_labels([m.value() for m in disputes])[0]} == {"dispute"}


def test_import_of_a_file_without_usable_rows_fails_with_one_line(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("tx_id,labelled_at_ms\n,5\n", encoding="utf-8")
    out = run_cli("labels", "import", str(path), "--topic", f"l-{unique}", bootstrap=bootstrap)
    assert out.returncode == 1 and "no usable label" in out.stderr and "Traceback" not in out.stderr


def test_import_dates_past_labels_now_and_completes_them_from_a_transactions_file(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    history = tmp_path / "h.parquet"
    write_history(
        lambda n: paysim_table(PaySimSimulator(accounts=300, seed=3).history(n)), history, 400
    )
    tx = pl.read_parquet(history)
    path = tmp_path / "cb.csv"  # a chargeback file that names only the transactions
    future = int(time.time() * 1000) + 3_600_000
    path.write_text(
        f"tx_id,labelled_at\n{tx['txId'][5]},2024-05-01\n{tx['txId'][9]},{future}\nnot-ours,1\n",
        encoding="utf-8",
    )
    topic = f"labels-now-{unique}"
    before = int(time.time() * 1000)
    out = run_cli(
        "labels", "import", str(path), "--transactions", str(history), "--topic", topic,
        bootstrap=bootstrap,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert f"completed 2 labels from {history.name}" in text
    assert "1 still lack their account" in text and "moved 2 labels dated before now" in text
    labels = decode_labels([m.value() for m in read_topic(client, topic, expect=3)])[0]
    by_tx = {m.tx_id: m for m in labels}
    for row, at in ((5, None), (9, future)):
        m = by_tx[tx["txId"][row]]
        assert (m.account, m.counterparty) == (tx["nameOrig"][row], tx["nameDest"][row])
        assert m.tx_time_ms == tx["eventTimeMs"][row]
        if at is None:  # 2024: moved to the time of the import
            assert before <= m.labelled_at_ms <= time.time() * 1000
        else:  # in the future: kept
            assert m.labelled_at_ms == at
    assert by_tx["not-ours"].account is None and by_tx["not-ours"].labelled_at_ms >= before


def test_import_completes_labels_from_the_store(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'fs.db'}"
    store = open_store(url)
    store.open()
    scored = make_scored(["t-0", "t-1", "t-2"])
    store.write(scored)
    store.close()
    path = tmp_path / "cb.csv"
    path.write_text("tx_id,labelled_at_ms,account\nt-1,5,C-own\nt-9,5,C9\n", encoding="utf-8")
    topic = f"labels-store-{unique}"
    out = run_cli(
        "labels", "import", str(path), "--store-url", url, "--topic", topic, bootstrap=bootstrap
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "completed 1 labels from the store" in text and "1 still lack" in text
    labels = decode_labels([m.value() for m in read_topic(client, topic, expect=2)])[0]
    by_tx = {m.tx_id: m for m in labels}
    one = by_tx["t-1"]
    assert (one.account, one.counterparty) == ("C-own", "M1")  # the file's account is kept
    assert one.tx_time_ms == int(scored.tx.event_time_ms[1])
    assert by_tx["t-9"].counterparty is None


def test_simulate_out_writes_labels_that_import_reads(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    history = tmp_path / "h.parquet"
    args = ("--count", "20000", "--seed", "5", "--fraud-rate", "0.02", "--accounts", "1000")
    out = run_cli("simulate", "--out", str(history), *args, bootstrap=bootstrap)
    assert out.returncode == 0, out.stderr
    labels_file = tmp_path / "h.labels.parquet"
    frame = pl.read_parquet(labels_file)
    tx = pl.read_parquet(history)
    assert tuple(frame.columns) == LABEL_COLUMNS and f"wrote {frame.height:,} labels" in out.stdout
    joined = frame.join(tx, left_on="tx_id", right_on="txId", how="left")
    assert joined["eventTimeMs"].null_count() == 0  # every label names a transaction of the file
    assert (joined["labelled_at_ms"] > joined["eventTimeMs"]).all()
    assert (joined["tx_time_ms"] == joined["eventTimeMs"]).all()
    assert (joined["account"] == joined["nameOrig"]).all()
    assert (joined["counterparty"] == joined["nameDest"]).all()
    frauds = int(tx["isFraud"].sum())
    fraud_labels = joined.filter(pl.col("source") != "dispute")
    assert fraud_labels["isFraud"].min() == 1 and 0.7 * frauds < fraud_labels.height < frauds
    assert joined.filter(pl.col("source") == "dispute")["isFraud"].max() in (0, None)
    none = run_cli(
        "simulate", "--out", str(tmp_path / "n.csv"), "--no-labels", *args, bootstrap=bootstrap
    )
    assert none.returncode == 0 and not (tmp_path / "n.labels.csv").exists()

    topic = f"sim-labels-{unique}"
    imported = run_cli(
        "labels", "import", str(labels_file), "--topic", topic, "--keep-times", bootstrap=bootstrap
    )
    assert imported.returncode == 0, imported.stderr
    back = decode_labels([m.value() for m in read_topic(client, topic, expect=frame.height)])[0]
    assert sorted(m.label_id or "" for m in back) == sorted(frame["label_id"].to_list())


#: 2026-01-01 03:00 UTC (a quiet hour): the live simulation's event-time origin in the test below.
_START_MS = 1_767_236_400_000


def test_live_simulate_produces_labels_by_default_after_their_transactions(
    bootstrap: str,
    client: dict[str, str],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fraudstream.cli import (
        _commands,  # noqa: F401  (registers the commands)
        _simulate,
    )
    from fraudstream.cli._app import app

    fast = LabelMix(  # seconds instead of hours and days, so a short stream releases labels
        analyst_delay=Delay(10_000, 2.0, 1_000, 60_000),
        chargeback_delay=Delay(30_000, 2.0, 2_000, 120_000),
        dispute_delay=Delay(30_000, 2.0, 2_000, 120_000),
    )
    monkeypatch.setattr(_simulate, "LiveLabels", lambda **kw: LiveLabels(mix=fast, **kw))
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
    tx_topic, label_topic = f"sim-tx-{unique}", f"sim-lab-{unique}"
    monkeypatch.setenv("FRAUDSTREAM_TOPICS__LABELS", label_topic)
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--rate",
            "0",
            "--count",
            "30000",
            "--accounts",
            "1000",
            "--seed",
            "9",
            "--fraud-rate",
            "0.02",
            "--start-ms",  # fixed: the simulator is busier in the afternoon, so from "now" the
            str(_START_MS),  # records spanned less event time, and released fewer labels
            "--topic",
            tx_topic,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "labels to" in result.output
    transactions = read_topic(client, tx_topic, expect=30_000)
    records, _, invalid = decode_paysim([m.value() for m in transactions])
    assert invalid == [] and all(r.txId for r in records)
    produced = int(result.output.split("produced ")[-1].split(" labels")[0].replace(",", ""))
    assert produced > 100  # 173 from this origin and seed
    messages = read_topic(client, label_topic, expect=produced)
    labels, _, bad = decode_labels([m.value() for m in messages])
    assert bad == [] and len(labels) == produced
    when = {r.txId: r for r in records}
    for m, label in zip(messages, labels, strict=True):
        tx = when[label.tx_id]
        assert label.labelled_at_ms > (tx.eventTimeMs or 0) == label.tx_time_ms
        assert m.key() == tx.nameOrig.encode() == (label.account or "").encode()
        assert label.counterparty == tx.nameDest and m.timestamp()[1] == label.labelled_at_ms
