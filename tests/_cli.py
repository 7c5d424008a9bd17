"""The command line in a child process, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def fraudstream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m fraudstream ARGS``, its output captured as text; never raises on exit code."""
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bench_json(
    args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 240
) -> dict[str, Any]:
    """The JSON object ``fraudstream bench --json ARGS`` prints (asserts it exited 0, with its
    stderr)."""
    out = fraudstream("bench", "--json", *args, env=env, cwd=cwd, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result
