"""Drift windows in both stores and the dashboard's query and chart of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.dashboard import Database
from fraudstream.dashboard._model import drift_chart
from fraudstream.dashboard._queries import drift_series
from fraudstream.sinks import DriftWindow, open_store

from ._pg_util import PG_URL

NAMES = ("amount", "kind_transfer", "score")


def _window(version: str, end_ms: int, psi: tuple[float, ...], alarm: bool) -> DriftWindow:
    return DriftWindow(end_ms, 60_000, version, 1_500, NAMES, psi, alarm)


def _check(url: str, schema: str | None = None) -> None:
    store = open_store(url, schema=schema)
    store.open()
    db = Database(url, schema=schema)
    try:
        assert drift_series(db)[0] is None
        store.write_drift([_window("old", 60_000, (0.0, 0.0, 0.0), False)])
        store.write_drift(
            [_window("v2", 60_000 * k, (0.01 * k, 0.02, 0.1 * k), k >= 3) for k in (1, 2, 3, 4)]
        )
        store.flush()
        # a redelivered window replaces its rows
        store.write_drift([_window("v2", 240_000, (0.5, 0.02, 0.6), True)])
        store.flush()
        version, frame = drift_series(db, windows=3)
        assert version == "v2"
        assert sorted(set(frame.window_end_ms)) == [120_000, 180_000, 240_000]
        last = frame[frame.window_end_ms == 240_000].set_index("feature")
        assert last.psi.to_dict() == pytest.approx(
            {"amount": 0.5, "kind_transfer": 0.02, "score": 0.6}
        )
        assert last.alarm.tolist() == [1, 1, 1]
        raised = store.drift_alarms(0)  # raised at the 3rd window; the 4th only holds it
        assert {(r[0], r[1]) for r in raised} == {("v2", 180_000)} and len(raised) == 3
        assert store.drift_alarms(180_000) == []
        spec = drift_chart(frame, 0.25).to_dict()
        assert spec["layer"][1]["mark"]["type"] == "rule"
    finally:
        db.close()
        store.close()


def test_drift_windows_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.mark.integration
def test_drift_windows_on_postgres(pg_schema: str) -> None:
    _check(PG_URL, pg_schema)
