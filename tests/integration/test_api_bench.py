"""``fraudstream bench --api --json`` end to end: the API and the detector as processes, every
decision stored once, every retry answered alike. Functional only: figures are not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_bench_api_json_reports_every_rate_and_stores_each_decision_once(
    tmp_path: Path, models_dir: Path, bootstrap: str
) -> None:
    env = {
        **os.environ,
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_API__BUDGET_MS": "2000",  # a loaded machine: decisions, not fallbacks
    }
    args = ["--api", "--api-rates", "50,100", "--duration", "3", "--accounts", "500", "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    problems = [line for line in out.stderr.splitlines() if " INFO " not in line]
    assert out.returncode == 0, "\n".join(problems[-60:])
    result = json.loads(out.stdout)
    assert set(result["rates"]) == {"50", "100"}
    for rate, r in result["rates"].items():
        assert r["requests"] == int(rate) * 3 and r["errors"] == 0, r
        assert r["stored"] == r["produced"] == r["distinct_transactions"] > 0
        assert r["retry_mismatches"] == 0 and r["retries_checked"] >= 1
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert set(r["cpu_ms_per_request"]) >= {"detect", "serve", "client"}
