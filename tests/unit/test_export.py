"""fraudstream.export on a SQLite store: daily files hold exactly the stored rows, re-runs rewrite
open days byte for byte, closed days are skipped, an interrupted run resumes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fraudstream.dashboard import Database
from fraudstream.export import MANIFEST, LocalTarget, day_range, export_days, feature_map
from fraudstream.sinks import SQLiteStore
from tests._export_data import DAY_MS, T0_MS, Filled, fill


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[Database, Filled]]:
    store = SQLiteStore(tmp_path / "store.db")
    store.open()
    data = fill(store)
    store.close()
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    yield db, data
    db.close()


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


def test_feature_map_names_each_row_by_its_version() -> None:
    names = {"a": ("x", "y"), "b": ("z",)}
    blobs = [
        np.array([1, 2], "<f4").tobytes(),
        np.array([3], "<f4").tobytes(),
        np.array([4, 5], "<f4").tobytes(),
    ]
    got = feature_map(blobs, ["a", "b", "a"], names).to_pylist()
    assert got == [[("x", 1.0), ("y", 2.0)], [("z", 3.0)], [("x", 4.0), ("y", 5.0)]]
    as_lists = feature_map([[1.0, 2.0], [3.0]], ["a", "b"], names).to_pylist()
    assert as_lists == got[:2]
    with pytest.raises(ValueError, match="versions without names"):
        feature_map(blobs, ["a", "c", "a"], names)


def test_day_range_is_utc_days() -> None:
    assert day_range(T0_MS, T0_MS + DAY_MS - 1) == [dt.date(2026, 12, 1)]
    assert len(day_range(T0_MS - 1, T0_MS + 2 * DAY_MS)) == 4


def test_every_stored_row_is_in_its_days_file(filled: tuple[Database, Filled], tmp_path: Path):
    db, data = filled
    out = tmp_path / "out"
    run = export_days(db, LocalTarget(out))
    table = pq.read_table(out / "transactions")
    assert (
        table.num_rows
        == len(data.tx_day)
        == sum(d.rows for d in run.written if d.table == "transactions")
    )
    rows = table.to_pylist()
    assert len({r["tx_id"] for r in rows}) == len(rows)
    for r in rows:
        day = (int(r["event_time_ms"].timestamp() * 1000) - T0_MS) // DAY_MS
        assert day == data.tx_day[r["tx_id"]]
        assert str(r["day"]) == (dt.date(2026, 12, 1) + dt.timedelta(days=day)).isoformat()
        assert dict(r["features"]) == pytest.approx(data.features[r["tx_id"]])
    fired = {r["tx_id"]: (r["rules_fired"], r["rules_shadow"], r["rule_set_version"]) for r in rows}
    assert fired["tx-0000005"] == (None, '["night","new_payee"]', 3)
    assert {f[0] for f in fired.values()} == {None, '["big_amount"]'}
    alerts = pq.read_table(out / "alerts")
    assert alerts.num_rows == data.alerts > 0
    labels = pq.read_table(out / "labels").to_pylist()
    assert sorted(r["label_id"] for r in labels) == sorted(str(x.label_id) for x in data.labels)
    manifest = json.loads((out / MANIFEST).read_text())
    days = manifest["tables"]["transactions"]
    assert sum(v["rows"] for v in days.values()) == len(data.tx_day)
    # the store's newest transaction is on the third day: the first two are closed
    assert [days[k]["closed"] for k in sorted(days)] == [True, True, False]


def test_a_rerun_skips_closed_days_and_rewrites_open_ones_identically(
    filled: tuple[Database, Filled], tmp_path: Path
) -> None:
    db, _ = filled
    out = tmp_path / "out"
    export_days(db, LocalTarget(out), tables=["transactions"])
    before = _digests(out)
    again = export_days(db, LocalTarget(out), tables=["transactions"])
    assert again.skipped == 2 and [d.day for d in again.written] == [dt.date(2026, 12, 3)]
    assert _digests(out) == before
    asked = export_days(
        db,
        LocalTarget(out),
        tables=["transactions"],
        since=dt.date(2026, 12, 1),
        until=dt.date(2026, 12, 1),
    )
    assert [d.day for d in asked.written] == [dt.date(2026, 12, 1)]
    assert _digests(out) == before


def test_an_interrupted_run_resumes_where_it_stopped(
    filled: tuple[Database, Filled], tmp_path: Path
) -> None:
    db, _ = filled
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    export_days(db, LocalTarget(whole), tables=["transactions"])
    calls = iter([False, True])  # stop before the second day
    first = export_days(
        db, LocalTarget(parts), tables=["transactions"], should_stop=lambda: next(calls, True)
    )
    assert len(first.written) == 1
    rest = export_days(db, LocalTarget(parts), tables=["transactions"])
    assert rest.skipped == 1 and len(rest.written) == 2
    assert _digests(parts) == _digests(whole)


def test_csv_has_a_column_per_feature(filled: tuple[Database, Filled], tmp_path: Path) -> None:
    db, data = filled
    out = tmp_path / "csv"
    export_days(db, LocalTarget(out), tables=["transactions"], fmt="csv")
    files = sorted(out.rglob("*.csv"))
    assert len(files) == 3
    table = pa.concat_tables([pacsv.read_csv(f) for f in files])
    assert table.num_rows == len(data.tx_day)
    names = [c.removeprefix("features.") for c in table.column_names if c.startswith("features.")]
    assert names == ["amount", "log_amount", "hour_of_day", "tx_count_by_account_1h"]
    rows = table.to_pylist()
    for r in rows:
        got = {n: r[f"features.{n}"] for n in names if r[f"features.{n}"] is not None}
        assert got == pytest.approx(data.features[r["tx_id"]])  # other versions' names empty
