"""The ``fraudstream`` command line (Typer): thin commands over the library."""

from __future__ import annotations

from fraudstream.cli._app import app, main

__all__ = ["app", "main"]
