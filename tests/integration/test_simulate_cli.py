"""``fraudstream simulate`` as a user runs it: files for training, and both formats into Kafka."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from fraudstream.schema import CARD_COLUMNS, decode_card, decode_paysim
from fraudstream.simulate import PAYSIM_COLUMNS, load_replay

from ._kafka_util import read_topic
from .test_replay import run_cli


def test_out_writes_paysim_and_card_files_that_replay_reads(tmp_path: Path, bootstrap: str) -> None:
    paysim = tmp_path / "paysim.parquet"
    out = run_cli(
        "simulate", "--out", str(paysim), "--count", "5000", "--seed", "3", bootstrap=bootstrap
    )
    assert out.returncode == 0, out.stderr
    assert "wrote 5,000 paysim rows" in out.stdout and "rows/min" in out.stdout
    frame = pl.read_parquet(paysim)
    assert tuple(frame.columns) == PAYSIM_COLUMNS and frame.height == 5_000
    again = tmp_path / "again.parquet"
    run_cli("simulate", "--out", str(again), "--count", "5000", "--seed", "3", bootstrap=bootstrap)
    assert pl.read_parquet(again).equals(frame)  # same seed, same file
    cards = tmp_path / "cards.csv"
    out = run_cli(
        "simulate", "--format", "card", "--out", str(cards), "--count", "3000", bootstrap=bootstrap
    )
    assert out.returncode == 0, out.stderr
    assert tuple(pl.read_csv(cards).columns) == CARD_COLUMNS
    assert load_replay(cards).format == "card" and len(load_replay(cards)) == 3_000


def test_both_formats_into_kafka_keyed_by_account(
    bootstrap: str, client: dict[str, str], unique: str
) -> None:
    for fmt, decode in (("paysim", decode_paysim), ("card", decode_card)):
        topic = f"sim-{fmt}-{unique}"
        out = run_cli(
            "simulate",
            "--format",
            fmt,
            "--rate",
            "0",
            "--count",
            "800",
            "--topic",
            topic,
            bootstrap=bootstrap,
        )
        assert out.returncode == 0, out.stderr
        messages = read_topic(client, topic, expect=800)
        records, _, invalid = decode([m.value() for m in messages])  # type: ignore[operator]
        assert invalid == [] and len(records) == 800
        accounts = [r.nameOrig if fmt == "paysim" else r.customerId for r in records]
        assert [m.key() for m in messages] == [a.encode() for a in accounts]
