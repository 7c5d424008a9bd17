"""The Streamlit dashboard: live monitoring, the review queue, trends, model and thresholds.

``APP`` is the script ``streamlit run`` starts; the queries (``_queries``), Kafka calls
(``_kafka``) and the what-if arithmetic (``_whatif``) are importable without Streamlit running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fraudstream.dashboard._db import Database
from fraudstream.dashboard._kafka import Lag, consumer_lag, label_message, publish_labels
from fraudstream.dashboard._whatif import Labelled, WhatIf, sweep, what_if

__all__ = [
    "APP",
    "Database",
    "Labelled",
    "Lag",
    "WhatIf",
    "consumer_lag",
    "label_message",
    "publish_labels",
    "sweep",
    "what_if",
]

#: The app script for ``streamlit run``.
APP: Final = Path(__file__).parent / "app.py"
