"""``python -m fraudstream`` runs the CLI."""

from __future__ import annotations

from fraudstream.cli import main

main()
