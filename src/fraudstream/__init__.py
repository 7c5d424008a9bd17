"""fraudstream: real-time fraud detection for financial transactions on Apache Kafka."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
