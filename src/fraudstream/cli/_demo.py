"""``fraudstream demo``: broker, first model, simulator and detector together, then a summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import typer

from fraudstream._prometheus import metrics_url
from fraudstream._redact import redact
from fraudstream.broker import EmbeddedBroker, free_port, port_open
from fraudstream.cli._app import app, console, load_settings, stop_event
from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.cli._detect import LiveLine, label_feedback_lines, run_detector, summary_table
from fraudstream.cli._train import ensure_model
from fraudstream.cli._users import create_account
from fraudstream.config import Settings
from fraudstream.schema import WindowStats
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorStats

_DRAIN_S = 3.0  # after the simulator stops, time for the detector to score what is in flight
_DRAIN_MAX_S = 120.0  # ... and at most this long for it to catch up with what was produced
_START_MAX_S = 120.0  # longest wait for the stream to start before the run's clock starts


def _start_simulator(settings: Settings, bootstrap: str, report: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
    cmd = [
        sys.executable, "-m", "fraudstream", "simulate",
        "--rate", str(settings.simulate.rate), "--report", str(report),
    ]  # fmt: skip
    log_path = settings.data_dir / "simulator.log"
    with log_path.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()


class _Stopper:
    """Stops the demo in order: the simulator first, then the detector once it has read all.

    It acts ``seconds`` after the stream starts, or as soon as ``interrupted`` is set (Ctrl-C /
    SIGTERM). After the simulator has exited, the detector runs until it has consumed
    everything the simulator reports produced (at most :data:`_DRAIN_MAX_S`, at least
    :data:`_DRAIN_S`).
    """

    def __init__(
        self,
        sim: subprocess.Popen[bytes],
        seconds: float | None,
        interrupted: threading.Event,
        report: Path,
    ) -> None:
        self.detector_stop = threading.Event()
        self.stats: DetectorStats | None = None  # the detector's, from its window callback
        self.produced: int | None = None
        self._sim = sim
        self._seconds = seconds
        self._interrupted = interrupted
        self._report = report
        threading.Thread(target=self._run, name="demo-stopper", daemon=True).start()

    def _run(self) -> None:
        # the clock starts with the stream: on a busy machine the simulator's start-up alone
        # can take longer than a short run (its first window closing means records flow)
        started = time.monotonic()
        while self.stats is None and time.monotonic() - started < _START_MAX_S:
            if self._interrupted.wait(0.2) or self._sim.poll() is not None:
                break
        self._interrupted.wait(self._seconds)
        self._sim.terminate()
        self._sim.wait()
        self.produced = _read_report(self._report)
        time.sleep(_DRAIN_S)
        deadline = time.monotonic() + _DRAIN_MAX_S
        while self.produced is not None and time.monotonic() < deadline:
            if self.stats is not None and self.stats.consumed >= self.produced:
                break
            time.sleep(0.2)
        self.detector_stop.set()


def _read_report(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["produced"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@app.command()
def demo(
    seconds: float | None = typer.Option(
        None, envvar="DEMO_SECONDS", help="Run this long, then summarise (default: until Ctrl-C)."
    ),
    rate: float | None = typer.Option(None, help="Simulated transactions per second [500]."),
    dashboard: bool = typer.Option(True, help="Start the dashboard too and print its URL."),
    dashboard_port: int | None = typer.Option(
        None, help="Dashboard port [8501, or a free one if busy; 0: a free one]."
    ),
) -> None:
    """Start the embedded broker, train a first model if none, run simulator + detector live."""
    settings = load_settings(simulate={"rate": rate})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = _run_store(settings)
    with ExitStack() as stack:
        bootstrap = settings.kafka.bootstrap_servers
        if not bootstrap:
            port = settings.kafka.embedded_port
            port = free_port() if port_open("127.0.0.1", port) else port
            broker = EmbeddedBroker(port=port, log_path=settings.data_dir / "broker.log")
            stack.enter_context(broker)
            bootstrap = broker.bootstrap_servers
            console.print(f"embedded Kafka broker (Tansu) at [bold]{bootstrap}[/]")
        metrics_port = settings.detect.metrics_port or free_port()
        settings = load_settings(
            simulate={"rate": rate},
            kafka={"bootstrap_servers": bootstrap},
            store={"url": store},
            detect={"metrics_port": metrics_port},
        )
        console.print(f"store for this run: [bold]{redact(settings.store_url())}[/]")
        metrics = metrics_url(settings.detect.metrics_host, metrics_port)
        console.print(f"detector metrics (Prometheus): {metrics}")
        ensure_model(settings)  # a promoted bundle (the first one is trained and promoted)
        dashboard_url = None
        if dashboard and store:  # this run's own store: an account to sign in with, once
            password = secrets.token_urlsafe(12)
            create_account(settings, "demo", "admin", password)
            console.print(f"dashboard sign-in (this run only): demo / {password}", markup=False)
        if dashboard:
            proc, dashboard_url = start_dashboard(
                settings,
                port=dashboard_port,
                bootstrap=bootstrap,
                log_path=settings.data_dir / "dashboard.log",
            )
            stack.callback(stop_dashboard, proc)
            console.print(f"dashboard at [bold]{dashboard_url}[/]")
        interrupted = stop_event()
        report = settings.data_dir / "simulator-report.json"
        report.unlink(missing_ok=True)
        sim = _start_simulator(settings, bootstrap, report)
        stack.callback(_kill_if_running, sim)
        stopper = _Stopper(sim, seconds, interrupted, report)
        line = LiveLine(settings.dashboard.currency)

        def on_window(w: WindowStats, stats: DetectorStats) -> None:
            stopper.stats = stats
            line(w, stats)

        until = f"for {seconds:.0f} s" if seconds else "Ctrl-C stops"
        topic = settings.topics.transactions
        console.print(
            f"simulator at {settings.simulate.rate:,.0f} tx/s → {topic} → detector; {until}"
        )
        stats = run_detector(  # the promoted bundle
            settings, should_stop=stopper.detector_stop.is_set, on_window=on_window
        )
        _summary(settings, bootstrap, stats, stopper.produced, dashboard_url)


def _run_store(settings: Settings) -> str | None:
    """A fresh SQLite store per demo run (``data/demo/run-<UTC time>.db``), unless one is set.

    Runs are kept apart: a rerun's simulator produces the same transaction ids, which one
    shared store would mix with the previous run's alerts and verdicts.
    """
    if settings.store.url:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    path = settings.data_dir / "demo" / f"run-{stamp}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _summary(
    settings: Settings,
    bootstrap: str,
    stats: DetectorStats,
    produced: int | None,
    dashboard_url: str | None,
) -> None:
    store = open_store(settings.store_url())
    store.open()
    try:
        stored = store.count_transactions()
        stored_alerts = store.count_alerts_by_decision()
    finally:
        store.close()
    feedback = label_feedback_lines(settings)
    table = summary_table(stats, title="fraudstream demo — summary")
    if produced is not None:
        missing = produced - stats.consumed
        verdict = "all of them" if missing <= 0 else f"[bold red]{missing:,} NOT scored[/]"
        table.add_row("produced by the simulator", f"{produced:,} ({verdict})")
    else:
        table.add_row("produced by the simulator", "unknown (it did not report; see its log)")
    table.add_row("alerts topic", f"{settings.topics.alerts} @ {bootstrap}")
    table.add_row("store (this run)", redact(settings.store_url()))
    alerts = ", ".join(f"{k} {v:,}" for k, v in sorted(stored_alerts.items())) or "none"
    table.add_row("in the store", f"{stored:,} transactions; alerts: {alerts}")
    table.add_row("feedback from labels", "\n".join(feedback))
    if dashboard_url:
        table.add_row("dashboard (stops with the demo)", dashboard_url)
    console.print(table)
