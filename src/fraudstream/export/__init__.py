"""Exports of the store to files: enriched transactions, alerts and labels by UTC day, as
Parquet or CSV, to a directory or S3 (``fraudstream export``; docs/export.md).

>>> [d.isoformat() for d in day_range(0, 86_400_000)]
['1970-01-01', '1970-01-02']
"""

from __future__ import annotations

from fraudstream.export._run import MANIFEST, DayResult, ExportRun, day_range, export_days
from fraudstream.export._tables import TABLES, Table, feature_map
from fraudstream.export._targets import ExportError, LocalTarget, S3Target, Target, open_target

__all__ = [
    "MANIFEST",
    "TABLES",
    "DayResult",
    "ExportError",
    "ExportRun",
    "LocalTarget",
    "S3Target",
    "Table",
    "Target",
    "day_range",
    "export_days",
    "feature_map",
    "open_target",
]
