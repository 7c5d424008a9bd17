"""The ``fraudstream`` command line."""

from __future__ import annotations

from fraudstream.cli._app import app, main

__all__ = ["app", "main"]
