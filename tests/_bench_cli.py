"""``fraudstream bench --json`` in a child process, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def bench_json(
    args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 240
) -> dict[str, Any]:
    """The JSON object the bench prints for ``args`` (asserts it exited 0, with its stderr)."""
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "--json", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result
