"""The Typer application: thin commands that build settings and call the library."""

from __future__ import annotations

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="fraudstream",
    help="Real-time fraud detection for financial transactions on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    """Entry point of the ``fraudstream`` script."""
    app()
