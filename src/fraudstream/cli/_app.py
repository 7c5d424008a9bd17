"""The Typer application and what every command shares: settings, logging, Kafka, signals."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import typer
from confluent_kafka import KafkaException
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from fraudstream._redact import RedactingFilter, redact
from fraudstream.broker import port_open
from fraudstream.config import Settings
from fraudstream.errors import ConfigError, FraudstreamError

__all__ = ["app", "console", "fail", "kafka_client", "load_settings", "main", "stop_event"]

app = typer.Typer(
    name="fraudstream",
    help="Real-time fraud detection for financial transactions on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    """Simulate a bank's transaction stream, train models, score every transaction live."""
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=True)
    handler.addFilter(RedactingFilter())  # no password or token of a URL in any log line
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[handler],
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line reason and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {redact(message)}")
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI overrides (nested dicts, ``None`` values dropped) above the environment."""
    clean = _drop_none(overrides)
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise fail(f"invalid settings: {exc}") from exc


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def bootstrap_servers(settings: Settings) -> str:
    """The configured cluster, else a running embedded broker on 127.0.0.1."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    port = settings.kafka.embedded_port
    if port_open("127.0.0.1", port):
        return f"127.0.0.1:{port}"
    raise ConfigError(
        f"no Kafka broker: nothing listens on 127.0.0.1:{port}. Start the embedded one with "
        "`fraudstream broker`, or set FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS"
    )


def kafka_client(settings: Settings) -> dict[str, Any]:
    """librdkafka client settings for the configured (or embedded) cluster."""
    return settings.kafka.client_config(bootstrap_servers(settings))


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C), so loops finish their batch and exit."""
    event = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        logging.getLogger("fraudstream").info("%s received: finishing", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event


#: Command name -> the module that registers it (``cli._commands`` imports them all).
_COMMAND_MODULES = (
    "apikey",
    "bench",
    "broker",
    "dashboard",
    "demo",
    "detect",
    "evaluate",
    "export",
    "labels",
    "lists",
    "model",
    "notify",
    "replay",
    "retrain",
    "rules",
    "schema",
    "score",
    "serve",
    "simulate",
    "train",
    "users",
)


def main() -> None:
    """Entry point of the ``fraudstream`` script: library errors become a one-line reason.

    Only the invoked command's module is imported (the others pull in LightGBM, scikit-learn,
    Streamlit …: seconds per process); ``--help`` and unknown commands import them all.
    """
    import importlib
    import sys

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command in _COMMAND_MODULES:
        importlib.import_module(f"fraudstream.cli._{command}")
    else:
        from fraudstream.cli import _commands  # noqa: F401  (registers the commands)

    try:
        app()
    except (FraudstreamError, KafkaException) as exc:  # one line, never a traceback
        err_console.print(f"[bold red]error:[/] {redact(str(exc))}")
        raise SystemExit(1) from exc
