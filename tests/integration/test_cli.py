"""The command line as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fraudstream.broker import EmbeddedBroker, free_port, port_open
from tests._cli import fraudstream

pytestmark = pytest.mark.integration


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
    produced = re.search(r"produced by the simulator\s+│?\s*([\d,]+) \(all of them\)", out.stdout)
    assert produced, out.stdout  # every produced transaction was scored
    assert re.search(r"stalls \(lag with nothing consumed\)\s+│?\s*0\b", out.stdout), out.stdout
    assert "%3|" not in out.stdout + out.stderr, "librdkafka's raw log lines"


def test_the_embedded_broker_dies_with_its_parent(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "fraudstream", "broker", "--port", str(port)]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        assert parent.poll() is None and time.monotonic() < deadline, "the broker did not start"
        time.sleep(0.1)
    parent.kill()  # SIGKILL: no chance to stop its child
    parent.wait()
    deadline = time.monotonic() + 10
    while port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, f"Tansu still serves port {port} after its parent died"
        time.sleep(0.1)


def test_a_simulator_that_loses_its_broker_says_so_and_ends_without_a_traceback(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log").start()
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FRAUDSTREAM_DATA_DIR": str(tmp_path),
    }
    cmd = [sys.executable, "-m", "fraudstream", "simulate", "--rate", "200", "--accounts", "500"]
    sim = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(8)  # producing
        assert sim.poll() is None
        broker.stop()
        time.sleep(5)
        assert sim.poll() is None, "it waits for the broker"
        sim.send_signal(signal.SIGTERM)
        out, _ = sim.communicate(timeout=90)
    finally:
        broker.stop()
        if sim.poll() is None:
            sim.kill()
    text = out.decode()
    assert "Traceback" not in text, text
    assert sim.returncode == 1, text
    assert text.count("unreachable") == 1, text
    assert "error:" in text and "undelivered" in text, text
