"""The detector's drift windows as stored: one row per window, model and histogram.

``model_drift`` is SQLite's migration 13 and PostgreSQL's migration 11 (never edit a released
migration; append one). ``feature`` is a feature's name or ``score``; ``alarm`` is 1 when the drift
alarm holds at the window's close (docs/drift.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fraudstream.sinks._rows import Alert, Reason

__all__ = [
    "DRIFT_DECISION",
    "RAISED_SQL",
    "DriftWindow",
    "drift_alerts",
    "drift_rows",
    "drift_alarm_index",
    "drift_table",
]

#: The ``decision`` of a drift alarm's notification (always notified, whatever the decisions).
DRIFT_DECISION: Final = "drift"
#: Features named in a drift alarm's notification.
_NAMED: Final = 5
#: The rows of every window where a drift alarm was raised (it held there and not at the
#: window before) and ended after ``?``, most drifting first; ``?`` placeholders.
RAISED_SQL: Final = """
SELECT d.model_version, d.window_end_ms, d.window_ms, d.row_count, d.feature, d.psi
FROM model_drift d
WHERE d.alarm = 1 AND d.window_end_ms > ?
  AND NOT EXISTS (
    SELECT 1 FROM model_drift p
    WHERE p.model_version = d.model_version AND p.feature = d.feature AND p.alarm = 1
      AND p.window_end_ms = d.window_end_ms - d.window_ms)
ORDER BY d.window_end_ms, d.model_version, d.psi DESC"""


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


def drift_alarm_index() -> tuple[str, ...]:
    """An index over the windows where the alarm held (the notifier's :data:`RAISED_SQL` reads
    only those): SQLite's migration 14, PostgreSQL's 12."""
    return (
        "CREATE INDEX IF NOT EXISTS ix_model_drift_alarm ON model_drift (alarm, window_end_ms)",
    )


def drift_rows(windows: Sequence[DriftWindow]) -> list[tuple[str, int, str, int, int, float, int]]:
    """The ``model_drift`` rows of ``windows``, in the table's column order."""
    return [
        (w.model_version, w.window_end_ms, name, w.window_ms, w.rows, psi, int(w.alarm))
        for w in windows
        for name, psi in zip(w.names, w.psi, strict=True)
    ]


def drift_alerts(
    rows: Sequence[Sequence[Any]], counts: Callable[[str], bool] = lambda _: True
) -> list[Alert]:
    """One notification per raised alarm from :data:`RAISED_SQL`'s rows: ``alert_id``
    ``drift:<version>:<window end>``, ``decision`` :data:`DRIFT_DECISION`, ``score`` the
    highest PSI, ``reasons`` the most drifting histograms that ``counts`` for the alarm (value
    and contribution: the PSI)."""
    grouped: dict[tuple[str, int], list[Sequence[Any]]] = {}
    for row in rows:
        if counts(str(row[4])):
            grouped.setdefault((str(row[0]), int(row[1])), []).append(row)
    now_ms = int(time.time() * 1000)
    out = []
    for (version, end_ms), found in grouped.items():
        top = sorted(found, key=lambda r: -float(r[5]))[:_NAMED]
        out.append(
            Alert(
                alert_id=f"drift:{version}:{end_ms}",
                tx_id="",
                decision=DRIFT_DECISION,
                score=float(top[0][5]),
                reasons=[Reason(str(r[4]), float(r[5]), float(r[5])) for r in top],
                model_version=version,
                event_time_ms=end_ms,
                created_at_ms=now_ms,
                account="",
                counterparty="",
                kind=f"{int(top[0][3])} transactions in {int(top[0][2]) // 1000} s",
                amount=0.0,
                label=None,
            )
        )
    return out
