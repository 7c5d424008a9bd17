"""``fraudstream replay --schema`` through the real broker: a file in the public credit-card
dataset's layout arrives as card records with the canonical fields, keyed by the card."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from fraudstream.schema import decode_card
from tests.unit.test_schema_infer import credit_card_sample

from ._kafka_util import read_topic
from .test_replay import run_cli

pytestmark = pytest.mark.integration

SCHEMA = """
[fields]
trans_num = "txId"
unix_time = { role = "event_time", unit = "s" }
cc_num = "customerId"
merchant = "merchant"
amt = "amount"
is_fraud = "label"
category = "categorical"
lat = { kind = "latitude", pair = "customer" }
long = { kind = "longitude", pair = "customer" }
merch_lat = { kind = "latitude", pair = "merchant" }
merch_long = { kind = "longitude", pair = "merchant" }
"""


def test_replay_with_a_schema_sends_canonical_card_records(
    bootstrap: str, client: dict[str, str], unique: str, tmp_path: Path
) -> None:
    data, schema = tmp_path / "cc.csv", tmp_path / "cc.toml"
    frame = credit_card_sample(data, rows=800, seed=9)
    schema.write_text(SCHEMA)
    topic = f"replay-schema-{unique}"
    plain = run_cli("replay", str(data), "--topic", topic, bootstrap=bootstrap)
    assert plain.returncode == 1  # lines as rich wraps them, joined
    assert "cc.csv has no column for the event time" in " ".join(plain.stderr.split())
    out = run_cli(
        "replay", str(data), "--schema", str(schema), "--rate", "20000", "--topic", topic,
        bootstrap=bootstrap,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stdout.split())
    assert "replaying 800 card rows" in said and "(the file's own)" in said
    messages = read_topic(client, topic, expect=800)
    decoded, _, invalid = decode_card([m.value() for m in messages])
    assert invalid == [] and len(decoded) == 800
    by_id = {r.txId: (m, r) for m, r in zip(messages, decoded, strict=True)}
    for row in frame.iter_rows(named=True):
        message, record = by_id[row["trans_num"]]
        assert message.key() == str(row["cc_num"]).encode()  # key = the account
        assert record.customerId == str(row["cc_num"]) and record.terminalId == row["merchant"]
        assert record.amount == row["amt"] and record.isFraud == row["is_fraud"]
        assert record.eventTimeMs == row["unix_time"] * 1000
    per_partition: dict[int, list[int]] = {}
    for m, r in zip(messages, decoded, strict=True):
        per_partition.setdefault(m.partition(), []).append(r.eventTimeMs)
    assert all(times == sorted(times) for times in per_partition.values())
    assert pl.Series([r.isFraud for r in decoded]).sum() == frame["is_fraud"].sum()
