"""Time each dashboard page's render and each query on a store (method in docs/dashboard.md).

A page's render time is one full run of its script under Streamlit's AppTest (every query and
chart spec built server-side), with the query cache cleared before each cold run; the warm run
repeats it within the cache TTL. The browser's drawing is not included.

    .venv/bin/python scripts/dashboard_timing.py --url sqlite:////tmp/seed10m.db --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

_PAGES = ("live", "alerts", "trends", "model")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _page_times(runs: int) -> dict[str, tuple[list[float], float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from fraudstream.dashboard import APP

    out: dict[str, tuple[list[float], float]] = {}
    at = AppTest.from_file(str(APP), default_timeout=600).run()  # process start-up, not counted
    for page in _PAGES:
        cold = []
        for _ in range(runs):
            st.cache_data.clear()
            at.switch_page(f"views/{page}.py")
            t = time.perf_counter()
            at.run()
            cold.append(time.perf_counter() - t)
            if at.exception:
                raise SystemExit(f"page {page} raised: {[e.value for e in at.exception]}")
        t = time.perf_counter()
        at.run()
        out[page] = (cold, time.perf_counter() - t)
    return out


def _query_times(runs: int, sample: int) -> list[tuple[str, float]]:
    from fraudstream.dashboard import Database
    from fraudstream.dashboard import _queries as q
    from fraudstream.schema import WindowStats

    db = Database(
        os.environ["FRAUDSTREAM_STORE__URL"], schema=os.environ.get("FRAUDSTREAM_STORE__PG_SCHEMA")
    )
    live = q.live_summary(db)
    end = live.window_end_ms if isinstance(live, WindowStats) else 0
    start = q.sample_start_ms(db, sample)
    top = q.alert_queue(db, "open", None, "score", 25, 0)
    account = top[0].account if top else ""
    day = end - 86_400_000
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("live_summary", lambda: q.live_summary(db)),
        ("window_series (5 min)", lambda: q.window_series(db, end - 300_000)),
        ("alerts_by_minute (30 min)", lambda: q.alerts_by_minute(db, end - 1_800_000)),
        ("alert_counts", lambda: q.alert_counts(db)),
        ("alert_queue (by score, page 1)", lambda: q.alert_queue(db, "open", None, "score", 25, 0)),
        (
            "alert_queue (by score, page 100)",
            lambda: q.alert_queue(db, "open", None, "score", 25, 2475),
        ),
        ("account_history", lambda: q.account_history(db, account, 20)),
        ("trend_series (24 h)", lambda: q.trend_series(db, day, 900_000)),
        ("alerts_since (24 h)", lambda: q.alerts_since(db, day)),
        ("sample_start_ms", lambda: q.sample_start_ms(db, sample)),
        ("score_histogram (sample)", lambda: q.score_histogram(db, start, 50)),
        ("decisions_by_kind (sample)", lambda: q.decisions_by_kind(db, start)),
        ("riskiest counterparty (24 h)", lambda: q.riskiest(db, "counterparty", day, 10)),
        ("riskiest account (24 h)", lambda: q.riskiest(db, "account", day, 10)),
        ("live_quality (24 h)", lambda: q.live_quality(db, day, None)),
        ("labelled_sample", lambda: q.labelled_sample(db, sample)),
        ("notification_failures", lambda: q.notification_failures(db, 50)),
    ]
    out = []
    for name, call in calls:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        out.append((name, statistics.median(times)))
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["FRAUDSTREAM_STORE__URL"] = args.url
    os.environ["FRAUDSTREAM_MODELS_DIR"] = args.models_dir
    if args.schema:
        os.environ["FRAUDSTREAM_STORE__PG_SCHEMA"] = args.schema
    from fraudstream.config import Settings
    from fraudstream.dashboard import Database
    from fraudstream.sinks import open_store

    t = time.perf_counter()
    Database(args.url, schema=args.schema).migrate()
    migrate_s = time.perf_counter() - t
    store = open_store(args.url, schema=args.schema)
    store.open()
    rows = store.count_transactions()
    store.close()
    sample = Settings().dashboard.sample_rows
    _out(f"store {args.url}: {rows:,} enriched transactions; open + migrate {migrate_s:.2f} s")
    _out(f"\n| page | cold render, median of {args.runs} (s) | all cold runs (s) | warm (s) |")
    _out("|---|---:|---|---:|")
    for page, (cold, warm) in _page_times(args.runs).items():
        runs = ", ".join(f"{c:.2f}" for c in cold)
        _out(f"| {page} | {statistics.median(cold):.2f} | {runs} | {warm:.2f} |")
    _out(f"\n| query (sample = newest {sample:,}) | median (ms) |")
    _out("|---|---:|")
    for name, secs in _query_times(args.runs, sample):
        _out(f"| {name} | {secs * 1000:,.1f} |")


if __name__ == "__main__":
    main()
