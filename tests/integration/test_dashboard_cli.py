"""`fraudstream dashboard` as a user runs it: serves the app, stops on SIGTERM, fails clearly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from fraudstream.broker import port_open
from fraudstream.sinks import open_store


def test_dashboard_serves_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream", "dashboard", "--store-url", url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        with urllib.request.urlopen(f"{found.group(0)}/_stcore/health", timeout=30) as reply:
            assert reply.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not port_open("127.0.0.1", port), "the streamlit process must stop too"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_bad_store_url_is_a_one_line_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fraudstream", "dashboard", "--store-url", "mysql://x/y"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "unsupported store URL" in out.stderr
