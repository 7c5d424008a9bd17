"""``fraudstream broker``: run the embedded Kafka broker in the foreground."""

from __future__ import annotations

import typer

from fraudstream.broker import EmbeddedBroker
from fraudstream.cli._app import app, console, load_settings, stop_event


@app.command()
def broker(
    port: int | None = typer.Option(None, help="Port on 127.0.0.1 (default: 9092)."),
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) on 127.0.0.1 until Ctrl-C or SIGTERM."""
    settings = load_settings(kafka={"embedded_port": port})
    stop = stop_event()
    with EmbeddedBroker(port=settings.kafka.embedded_port) as running:
        address = running.bootstrap_servers
        console.print(f"Kafka broker ready at [bold]{address}[/] (memory only); Ctrl-C stops")
        while not stop.wait(0.5):
            if not running.running():
                raise typer.Exit(1)
