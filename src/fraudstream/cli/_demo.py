"""``fraudstream demo``: broker, first model, simulator and detector together, then a summary."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

import typer
from rich.table import Table

from fraudstream.broker import EmbeddedBroker, free_port, port_open
from fraudstream.cli._app import app, console, load_settings, stop_event
from fraudstream.cli._dashboard import start_dashboard, stop_dashboard
from fraudstream.cli._detect import run_detector
from fraudstream.cli._train import ensure_model
from fraudstream.config import Settings
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorStats

_DRAIN_S = 3.0  # after the simulator stops, time for the detector to score what is in flight


def _start_simulator(settings: Settings, bootstrap: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
    cmd = [sys.executable, "-m", "fraudstream", "simulate", "--rate", str(settings.simulate.rate)]
    log_path = settings.data_dir / "simulator.log"
    with log_path.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()


class _Stopper:
    """Stops the demo in order: the simulator first, then, after a drain, the detector.

    It acts after ``seconds`` or as soon as ``interrupted`` is set (Ctrl-C / SIGTERM).
    """

    def __init__(
        self, sim: subprocess.Popen[bytes], seconds: float | None, interrupted: threading.Event
    ) -> None:
        self.detector_stop = threading.Event()
        self._sim = sim
        self._seconds = seconds
        self._interrupted = interrupted
        threading.Thread(target=self._run, name="demo-stopper", daemon=True).start()

    def _run(self) -> None:
        self._interrupted.wait(self._seconds)
        self._sim.terminate()
        self._sim.wait()
        time.sleep(_DRAIN_S)
        self.detector_stop.set()


@app.command()
def demo(
    seconds: float | None = typer.Option(
        None, envvar="DEMO_SECONDS", help="Run this long, then summarise [default: until Ctrl-C]."
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
    with ExitStack() as stack:
        bootstrap = settings.kafka.bootstrap_servers
        if not bootstrap:
            port = settings.kafka.embedded_port
            port = free_port() if port_open("127.0.0.1", port) else port
            broker = EmbeddedBroker(port=port, log_path=settings.data_dir / "broker.log")
            stack.enter_context(broker)
            bootstrap = broker.bootstrap_servers
            console.print(f"embedded Kafka broker (Tansu) at [bold]{bootstrap}[/]")
            settings = load_settings(
                simulate={"rate": rate}, kafka={"bootstrap_servers": bootstrap}
            )
        ensure_model(settings)  # a promoted bundle (the first one is trained and promoted)
        dashboard_url = None
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
        sim = _start_simulator(settings, bootstrap)
        stack.callback(_kill_if_running, sim)
        stopper = _Stopper(sim, seconds, interrupted)
        until = f"for {seconds:.0f} s" if seconds else "Ctrl-C stops"
        topic = settings.topics.transactions
        console.print(
            f"simulator at {settings.simulate.rate:,.0f} tx/s → {topic} → detector; {until}"
        )
        stats = run_detector(settings, should_stop=stopper.detector_stop.is_set)  # the promoted
        _summary(settings, bootstrap, stats, dashboard_url)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _summary(
    settings: Settings, bootstrap: str, stats: DetectorStats, dashboard_url: str | None
) -> None:
    store = open_store(settings.store_url())
    store.open()
    try:
        stored = store.count_transactions()
        stored_alerts = store.count_alerts_by_decision()
    finally:
        store.close()
    table = Table(title="fraudstream demo — summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("transactions scored", f"{stats.valid:,}")
    table.add_row("sent to the dead-letter topic", f"{stats.invalid:,}")
    for name, n in stats.decisions.items():
        table.add_row(f"decision: {name}", f"{n:,}")
    table.add_row("frauds injected by the robots", f"{stats.frauds:,}")
    table.add_row("alert precision (review+block vs labels)", _fmt(stats.precision))
    table.add_row("alert recall (frauds that raised an alert)", _fmt(stats.recall))
    table.add_row("throughput (mean, tx/s)", f"{stats.rate():,.0f}")
    table.add_row("alerts topic", f"{settings.topics.alerts} @ {bootstrap}")
    table.add_row("store", settings.store_url())
    table.add_row("store totals", f"{stored:,} transactions, alerts {stored_alerts}")
    if dashboard_url:
        table.add_row("dashboard (stops with the demo)", dashboard_url)
    console.print(table)
