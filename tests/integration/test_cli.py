"""The command line as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.broker import free_port

pytestmark = pytest.mark.integration


def fraudstream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    out = fraudstream("--help")
    assert out.returncode == 0
    for command in ("broker", "simulate", "train", "detect", "demo"):
        assert re.search(rf"\b{command}\b", out.stdout), command


def test_no_broker_is_a_one_line_error(tmp_path: Path, models_dir: Path) -> None:
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__EMBEDDED_PORT": str(free_port()),
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
    }
    out = fraudstream("detect", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "no Kafka broker" in out.stderr and "fraudstream broker" in out.stderr


def test_demo_runs_for_demo_seconds_and_summarises(tmp_path: Path, models_dir: Path) -> None:
    env = {
        **os.environ,
        "DEMO_SECONDS": "12",
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_DATA_DIR": str(tmp_path / "data"),
        "FRAUDSTREAM_KAFKA__EMBEDDED_PORT": str(free_port()),
        "FRAUDSTREAM_SIMULATE__ACCOUNTS": "5000",
    }
    out = fraudstream("demo", env=env, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "last 30s:" in out.stdout, "live window lines"
    scored = re.search(r"transactions scored\s+│?\s*([\d,]+)", out.stdout)
    assert scored, out.stdout
    # about 500 tx/s for ~12 s; the first window lines need the group join (~3 s on Tansu)
    assert int(scored.group(1).replace(",", "")) > 3_000
    assert "alert precision" in out.stdout and "store" in out.stdout
