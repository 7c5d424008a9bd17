"""Benchmark: ``fraudstream rules backtest --from --to`` on 1 M stored transactions (issue 19).

``python scripts/rules_backtest_bench.py [--rows 1000000] [--runs 3] [--dir DIR] [--pg-url URL]``
(run from ``scripts/``) simulates PaySim history (fraud robots on), replays it through the
pre-authorisation feature engine, scores it with a stand-in (``rules_bench.scored``: a logistic
of three features, decisions at 0.5 / 0.9, those thresholds recorded as the model version's
metrics), applies the PaySim starter pack with every rule live (lists ``mules`` and ``trusted``
of 200 payees each) as a detector does, and writes every batch of 20,000 rows through the
detector's sink (a scratch SQLite file, or a scratch schema of the PostgreSQL at ``--pg-url``,
dropped after), with the simulator's labels. Then it times the command — a new process each
run, from start-up to exit — backtesting the starter pack on the whole range, and
:func:`fraudstream.sinks.load_history` alone in this process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
from rules_bench import scored

from fraudstream.features import FeatureEngine, feature_names
from fraudstream.rules import RuleSet, Schema, batch_frame
from fraudstream.rules._backtest import rule_columns
from fraudstream.rules._pack import starter_pack
from fraudstream.simulate import PaySimSimulator, batch_labels
from fraudstream.sinks import RuleStore, load_history, open_store

BATCH = 20_000
LIST_SIZE = 200


def fill(url: str, rows: int, pg_schema: str | None = None) -> dict[str, float]:
    """Write ``rows`` simulated, featured, scored and ruled transactions to the store."""
    started = time.perf_counter()
    history = PaySimSimulator(accounts=20_000, seed=11).history(rows)
    payees = np.unique(np.asarray(history.counterparty, dtype=object))
    rng = np.random.default_rng(11)
    picked = rng.choice(payees, 2 * LIST_SIZE, replace=False).tolist()
    lists = {"mules": frozenset(picked[:LIST_SIZE]), "trusted": frozenset(picked[LIST_SIZE:])}
    with RuleStore(url, schema=pg_schema) as rules_store:
        for name, values in lists.items():
            rules_store.create_list(name, kind="account", author="bench")
            rules_store.add_entries(name, sorted(values), author="bench")
    schema = Schema.for_mode("pre_auth")
    pack = starter_pack("pre_auth").rules
    live = RuleSet([replace(r, status="live") for r in pack], schema, lists=lists.keys())
    names = feature_names("pre_auth")
    engine = FeatureEngine(mode="pre_auth")
    store = open_store(url, schema=pg_schema)
    store.open()
    metrics = {"selection": {"chosen": "bench"}, "bench": _thresholds()}
    store.record_model_version("bench", json.dumps(metrics))
    for lo in range(0, rows, BATCH):
        tx = history.take(np.arange(lo, min(lo + BATCH, rows)))
        batch = scored(tx, engine.update_and_extract(tx), names)
        decided = live.decide(batch_frame(batch, live.columns), batch.decision, lists)
        batch.decision = decided.decision
        batch.rules_fired, batch.rules_shadow = decided.fired, decided.shadow_fired
        batch.rule_set_version = 1
        store.write(batch)
        store.flush()
    store.record_labels(batch_labels(history, seed=11))
    store.close()
    return {
        "fill_seconds": round(time.perf_counter() - started, 1),
        "first_ms": float(history.event_time_ms.min()),
        "last_ms": float(history.event_time_ms.max()),
    }


def _thresholds() -> dict[str, dict[str, float]]:
    return {"review": {"threshold": 0.5}, "block": {"threshold": 0.9}}


def time_command(url: str, first_ms: int, last_ms: int, pg_schema: str | None) -> float:
    """Wall-clock seconds of one ``rules backtest --starter --from --to`` process."""
    env = {**os.environ, **({"FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema} if pg_schema else {})}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fraudstream",
            "rules",
            "backtest",
            "--starter",
            "--from",
            str(first_ms),
            "--to",
            str(last_ms + 1),
            "--ground-truth",
            "--store-url",
            url,
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - started


def measure(url: str, rows: int, runs: int, pg_schema: str | None) -> dict[str, object]:
    """Fill the store at ``url``, then time the command ``runs`` times and the read alone."""
    filled = fill(url, rows, pg_schema)
    first, last = int(filled["first_ms"]), int(filled["last_ms"])
    times = [round(time_command(url, first, last, pg_schema), 2) for _ in range(runs)]
    columns = frozenset().union(
        *rule_columns(starter_pack("pre_auth").rules, Schema.for_mode("pre_auth")).values()
    )
    started = time.perf_counter()
    frame = load_history(url, first, last + 1, columns, pg_schema=pg_schema, ground_truth=True)
    return {
        "store": "postgresql" if pg_schema else "sqlite",
        "rows": frame.height,
        "columns_read": sorted(columns),
        "fill_seconds": filled["fill_seconds"],
        "command_seconds": times,
        "command_median_s": statistics.median(times),
        "load_history_s": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the scratch store goes")
    parser.add_argument(
        "--pg-url", default=None, help="PostgreSQL instead: a scratch schema there, dropped after"
    )
    args = parser.parse_args()
    if args.pg_url:
        schema = f"rules_bench_{uuid.uuid4().hex[:8]}"
        try:
            result = measure(args.pg_url, args.rows, args.runs, schema)
        finally:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
            path = Path(scratch) / "bench.db"
            result = measure(f"sqlite:///{path}", args.rows, args.runs, None)
            result["store_mb"] = round(path.stat().st_size / 1e6)
    print(json.dumps(result))  # noqa: T201 - a script's result


if __name__ == "__main__":
    main()
