"""``fraudstream bench --format card --json`` runs the card path end to end and reports its figures.

Functional only: the figures themselves are measured by the benchmark, never asserted on time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudstream.bench import card_history
from fraudstream.model import train_bundle
from tests._cli import bench_json

pytestmark = pytest.mark.integration

_DAY_MS = 86_400_000


def test_bench_card_json_has_the_card_figures(tmp_path: Path) -> None:
    models = tmp_path / "models"
    history, labels = card_history(rows=40_000, customers=1_000, seed=21)
    bundle = train_bundle(
        history, mode="card", seed=0, gap_ms=7 * _DAY_MS, partitions=4, labels=labels
    )
    bundle.save(models)  # a candidate only: the bench takes the newest card bundle
    env = {
        **os.environ,
        "FRAUDSTREAM_MODELS_DIR": str(models),
        "FRAUDSTREAM_KAFKA__PARTITIONS": "4",
    }
    args = ["--format", "card", "--count", "3000", "--rates", "300", "--duration", "3"]
    args += ["--accounts", "1000", "--state-accounts", "500", "--no-labels"]
    args += ["--soak-minutes", "0.2", "--soak-rate", "300", "--bounded-hours", "0"]
    result = bench_json(args, env, tmp_path, timeout=300)
    assert result["format"] == "card" and result["model_version"] == bundle.version
    sustained = result["sustained"]
    assert sustained["transactions"] == 3000 and result["throughput_tx_per_s"] > 0
    assert sustained["dead_lettered"] == 0  # every record scored, none refused by the guard
    assert set(sustained["consuming_thread_us_per_tx"]) >= {"poll", "decode", "features", "score"}
    assert set(sustained["output_thread_us_per_tx"]) >= {"store_write", "store_commit"}
    live = result["latency_ms"]["300"]
    assert live["transactions"] > 0 and 0 < live["p50"] <= live["p95"] <= live["p99"]
    # the live simulator follows the warm-up records in event time: none is too late to score
    assert live["dead_lettered"] == 0
    soak = result["soak"]
    assert soak["produced"] > 0 and soak["scored"] == soak["produced"] and soak["stalls"] == 0
    assert soak["dead_lettered"] == 0
    state = result["card_state"]
    assert [d["day"] for d in state["days"]] == [1, 7, 30, 90]
    for day in state["days"]:
        assert 0 < day["customers_held"] <= 500 and day["terminals_held"] > 0
        assert day["bytes_per_customer"] > 0 and day["bytes_per_terminal"] > 0
    assert result["state_bytes_per_customer"] == state["days"][-1]["bytes_per_customer"]
    assert result["state_bytes_per_terminal"] > 0 and result["peak_rss_mb"] > 0
    assert "stages_us_per_tx" not in result  # PaySim's in-process parts are not run
