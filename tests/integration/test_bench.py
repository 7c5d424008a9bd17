"""``fraudstream bench --json`` runs end to end and reports what the issue asks for.

Functional only: the figures themselves are measured by the benchmark, never asserted on time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests._cli import bench_json

pytestmark = pytest.mark.integration


def test_bench_json_has_the_reported_keys(tmp_path: Path, models_dir: Path) -> None:
    env = {
        **os.environ,
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_BENCH_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
    }
    args = ["--count", "3000", "--rates", "300", "--duration", "3", "--state-accounts", "2000"]
    args += ["--bounded-hours", "1", "--soak-minutes", "0.2", "--soak-rate", "300"]
    args += ["--label-rates", "300", "--pairs", "1"]
    result = bench_json([*args, "--accounts", "2000"], env, tmp_path)
    assert result["sustained"]["transactions"] == 3000
    assert result["throughput_tx_per_s"] > 0
    sustained = result["sustained"]
    assert set(sustained["consuming_thread_us_per_tx"]) >= {"poll", "features", "score"}
    assert set(sustained["output_thread_us_per_tx"]) >= {"store_write", "store_commit"}
    assert sustained["mean_batches_per_commit"] >= 1
    live = result["latency_ms"]["300"]
    assert live["transactions"] > 0 and 0 < live["p50"] <= live["p95"] <= live["p99"]
    assert set(result["stages_us_per_tx"]) >= {
        "decode_validate",
        "features",
        "score",
        "store_sqlite",
    }
    assert result["state_bytes_per_account"] > 0 and result["peak_rss_mb"] > 0
    bounded = result["bounded_state"]
    assert 0 < bounded["entities_with_ttl"][0] < bounded["entities_without"][0]
    soak = result["soak"]
    assert soak["produced"] > 0 and soak["scored"] == soak["produced"] and soak["stalls"] == 0
    assert soak["per_minute"][0]["transactions"] > 0
    labels = result["labels"]  # the same runs with labels flowing (1 per 100 tx)
    assert labels["every"] == 100 and labels["throughput_ratio"] > 0
    assert len(labels["throughput_tx_per_s"]["with"]) == 1
    assert result["sustained_labels"]["transactions"] == 3000
    assert "labels" in result["sustained_labels"]["consuming_thread_us_per_tx"]
    assert len(labels["latency_p99_ms"]["300"]["with"]) == 1
    assert labels["latency_p99_ratio"]["300"] > 0
    live_labelled = labels["latency_ms"]["300"]
    assert 0 < live_labelled["p50"] <= live_labelled["p99"]
    flow = live_labelled["labels"]
    assert flow["produced"] > 0 and flow["invalid"] == 0 and flow["sync_ms_per_batch"] > 0
    assert set(result["store_rows_per_s"]) == {"sqlite", "postgresql"}
    assert all(v > 0 for v in result["store_rows_per_s"].values())


def test_bench_shadow_rules_record_their_hits_and_never_act(
    tmp_path: Path, models_dir: Path
) -> None:
    """``--rules 50 --rules-status shadow``: the same stream with and without the rules alerts
    the same rows (shadow rules never act) while the rules' hits are stored; the ratio lies in
    its bootstrap interval."""
    env = {**os.environ, "FRAUDSTREAM_MODELS_DIR": str(models_dir)}
    args = ["--count", "3000", "--rates", "", "--no-labels", "--soak-minutes", "0"]
    args += ["--bounded-hours", "0", "--state-accounts", "2000", "--pairs", "1"]
    args += ["--rules", "50", "--rules-status", "shadow"]
    rules = bench_json(args, env, tmp_path)["rules"]
    assert (rules["live"], rules["shadow"]) == (0, 50)
    assert rules["fired_share"] > 0
    assert rules["alert_share"] == rules["alert_share_without"] > 0
    low, high = rules["ratio_interval_90"]
    assert low <= rules["ratio"] <= high and len(rules["pair_ratios"]) == 1
