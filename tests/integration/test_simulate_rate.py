"""The rate-accuracy benchmark runs (its figures live in docs/benchmarks.md, not in a test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_rate_accuracy_option_runs_and_reports(bootstrap: str) -> None:
    env = {**os.environ, "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "--rate-accuracy", "200", "--duration", "2"]
        + ["--accounts", "500", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (run,) = json.loads(out.stdout)
    assert run["target_tx_per_s"] == 200 and run["duration_s"] == 2
    assert run["messages"] > 0 and run["achieved_tx_per_s"] > 0
    assert {"error_pct", "per_second_min", "per_second_max", "timestamps"} <= set(run)
