"""Detector processes for the crash, restart and rebalance tests (`fraudstream detect`)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def detector_env(
    bootstrap: str, unique: str, db: Path, models_dir: Path, data_dir: Path, group: str = ""
) -> dict[str, str]:
    """The environment of a detector on topics ``tx-/alerts-/dlq-{unique}`` writing to ``db``."""
    return {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FRAUDSTREAM_TOPICS__TRANSACTIONS": f"tx-{unique}",
        "FRAUDSTREAM_TOPICS__ALERTS": f"alerts-{unique}",
        "FRAUDSTREAM_TOPICS__DLQ": f"dlq-{unique}",
        "FRAUDSTREAM_TOPICS__LABELS": f"labels-{unique}",
        "FRAUDSTREAM_STORE__URL": f"sqlite:///{db}",
        "FRAUDSTREAM_MODELS_DIR": str(models_dir),
        "FRAUDSTREAM_DATA_DIR": str(data_dir),
        "FRAUDSTREAM_DETECT__GROUP_ID": group or f"g-{unique}",
    }


def start_detector(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fraudstream", "detect", "--quiet", "--batch-max", "500", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def stored_features(db: Path) -> dict[str, tuple[int, list[float]]]:
    """``tx_id → (partition, features)`` of every enriched row in the SQLite store ``db``."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute('SELECT tx_id, "partition", features FROM transactions_enriched')
        return {tx: (int(p), np.frombuffer(f, dtype="<f4").tolist()) for tx, p, f in rows}


def wait_for_rows(proc: subprocess.Popen[bytes], db: Path, rows: int, timeout_s: float) -> None:
    """Wait until ``db`` stores ``rows`` enriched transactions while ``proc`` keeps running."""
    deadline = time.monotonic() + timeout_s
    while count_rows(db, "transactions_enriched") < rows and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.02)


def wait_for_output(proc: subprocess.Popen[bytes], text: str, timeout_s: float) -> str:
    """Read ``proc``'s output until a line holds ``text`` (e.g. a detector's "assigned": it has
    joined its group, and a SIGTERM now finds it running, not still importing); the lines read.
    Checked between lines: the detector logs as it starts, so a line is never long in coming."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break  # it exited
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"no line with {text!r} in {timeout_s:.0f} s:\n" + "".join(lines))
