"""The detector's drift windows as stored: one row per window, model and histogram.

``model_drift`` is SQLite's migration 13 and PostgreSQL's migration 11 (never edit a released
migration; append one). ``feature`` is a feature's name or ``score``; ``alarm`` is 1 when the drift
alarm holds at the window's close (docs/drift.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DriftWindow", "drift_rows", "drift_table"]


@dataclass(frozen=True)
class DriftWindow:
    """PSI per monitored histogram of one closed event-time window (``names[i]`` → ``psi[i]``)."""

    window_end_ms: int
    window_ms: int
    model_version: str
    rows: int
    names: tuple[str, ...]
    psi: tuple[float, ...]
    alarm: bool
    #: the histograms over the threshold that count for the alarm
    over: tuple[str, ...] = ()


def drift_table(big: str, real: str) -> tuple[str, ...]:
    """The statements creating ``model_drift`` (``big``: 64-bit integer, ``real``: double)."""
    return (
        f"""
    CREATE TABLE IF NOT EXISTS model_drift (
        model_version text NOT NULL,
        window_end_ms {big} NOT NULL,
        feature text NOT NULL,
        window_ms {big} NOT NULL,
        row_count {big} NOT NULL,
        psi {real} NOT NULL,
        alarm smallint NOT NULL,
        PRIMARY KEY (model_version, window_end_ms, feature)
    )""",
        "CREATE INDEX IF NOT EXISTS ix_model_drift_end ON model_drift (window_end_ms)",
    )


def drift_rows(windows: Sequence[DriftWindow]) -> list[tuple[str, int, str, int, int, float, int]]:
    """The ``model_drift`` rows of ``windows``, in the table's column order."""
    return [
        (w.model_version, w.window_end_ms, name, w.window_ms, w.rows, psi, int(w.alarm))
        for w in windows
        for name, psi in zip(w.names, w.psi, strict=True)
    ]
