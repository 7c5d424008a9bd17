"""``fraudstream dashboard``: the Streamlit dashboard over the store (also started by the demo)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

from fraudstream._redact import redact
from fraudstream.broker import free_port, port_open
from fraudstream.cli._app import app, console, fail, load_settings, stop_event
from fraudstream.config import Settings
from fraudstream.dashboard import APP, Database
from fraudstream.errors import ConfigError

__all__ = ["start_dashboard", "stop_dashboard"]

_READY_TIMEOUT_S = 60.0


def _env(settings: Settings, bootstrap: str | None) -> dict[str, str]:
    """The dashboard process's environment: this process's, plus the settings that matter."""
    env = {
        **os.environ,
        "FRAUDSTREAM_STORE__URL": settings.store_url(),
        "FRAUDSTREAM_MODELS_DIR": str(settings.models_dir),
        "FRAUDSTREAM_DATA_DIR": str(settings.data_dir),
    }
    if settings.store.pg_schema:
        env["FRAUDSTREAM_STORE__PG_SCHEMA"] = settings.store.pg_schema
    if bootstrap:
        env["FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
    return env


def start_dashboard(
    settings: Settings,
    *,
    port: int | None = None,
    bootstrap: str | None = None,
    log_path: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``streamlit run`` on the app (headless, usage statistics off); its process and URL.

    ``port`` 0 or a busy port means a free one. The store is opened (and migrated) first, so a
    wrong URL fails here with the store's message rather than inside the page.
    """
    Database(settings.store_url(), schema=settings.store.pg_schema).migrate()
    port = settings.dashboard.port if port is None else port
    if port == 0 or port_open("127.0.0.1", port):
        port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--client.toolbarMode=minimal",
    ]
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            cmd, env=_env(settings, bootstrap), stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log_path and not isinstance(out, int):
            out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not port_open("127.0.0.1", port, timeout_s=0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_dashboard(proc)
            where = f"; see {log_path}" if log_path else ""
            raise ConfigError(f"the dashboard (streamlit) did not start on port {port}{where}")
        time.sleep(0.2)
    return proc, url


def stop_dashboard(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Terminate the dashboard process (kill it if it does not exit in time)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@app.command()
def dashboard(
    store_url: str | None = typer.Option(
        None, help="Store URL to read (default: FRAUDSTREAM_STORE__URL, else data/fraudstream.db)."
    ),
    port: int | None = typer.Option(None, help="Port on 127.0.0.1 [8501; 0: a free port]."),
) -> None:
    """Serve the dashboard (Live, Alerts, Trends, Model & thresholds) until Ctrl-C."""
    settings = load_settings(store={"url": store_url})
    stop = stop_event()
    try:
        proc, url = start_dashboard(settings, port=port)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    store = redact(settings.store_url())
    console.print(f"dashboard at [bold]{url}[/] (store {store}); Ctrl-C stops")
    try:
        while not stop.wait(0.5):
            if proc.poll() is not None:
                raise fail(f"the dashboard exited with code {proc.returncode}")
    finally:
        stop_dashboard(proc)
