"""Per-stage cost of the hot path, in µs per transaction, measured in-process on real batches."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle
from fraudstream.schema import (
    ScoredBatch,
    WindowStats,
    decode_paysim,
    encode_paysim,
    paysim_to_batch,
)
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import SQLiteStore, Store
from fraudstream.stream import StageClock

__all__ = ["postgres_store_rates", "stage_costs", "store_rates"]


def _scored_batches(
    bundle: Bundle, clock: StageClock, *, rows: int, batch: int, accounts: int, seed: int
) -> Iterator[ScoredBatch]:
    """The hot path up to the store on simulated PaySim records, timed stage by stage."""
    records = PaySimSimulator(accounts=accounts, seed=seed).next_batch(rows)
    values = [encode_paysim(r) for r in records]
    engine = FeatureEngine(mode=bundle.mode)  # type: ignore[arg-type]
    engine.warm_up()  # as the detector does before consuming
    bundle.warm_up()
    for start in range(0, rows, batch):
        with clock("decode_validate"):
            recs, _, _ = decode_paysim(values[start : start + batch])
        with clock("to_batch"):
            tx = paysim_to_batch(recs, [f"t/0/{start + i}" for i in range(len(recs))])
        with clock("features"):
            x = engine.update_and_extract(tx)
        with clock("score"):
            score = bundle.score(x)
        with clock("decide"):
            decision = bundle.decide(score)
        with clock("explain"):
            reasons = bundle.explain_alerts(x, decision)
        yield ScoredBatch(
            tx=tx,
            feature_names=bundle.feature_names,
            features=x,
            score=score,
            decision=decision,
            reasons=reasons,
            model_version=bundle.version,
            partition=np.zeros(len(tx), dtype=np.int32),
            offset=np.arange(start, start + len(tx), dtype=np.int64),
            processed_at_ms=int(time.time() * 1000),
        )


def stage_costs(
    bundle: Bundle,
    *,
    store: Store | None = None,
    store_label: str = "sqlite",
    rows: int = 200_000,
    batch: int = 5_000,
    accounts: int = 20_000,
    seed: int = 3,
) -> dict[str, float]:
    """µs per transaction of decode+validate, mapping, features, scoring, explaining, store.

    ``store`` (opened here, closed after) defaults to a SQLite file in a temporary directory.
    """
    clock = StageClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = store or SQLiteStore(Path(tmp) / "bench.db")
        store.open()
        for scored in _scored_batches(
            bundle, clock, rows=rows, batch=batch, accounts=accounts, seed=seed
        ):
            with clock(f"store_{store_label}"):
                store.write(scored)
                store.flush()
        store.close()
    totals = clock.seconds
    return {name: seconds * 1e6 / rows for name, seconds in totals.items()}


def _alerts_only(scored: ScoredBatch) -> ScoredBatch:
    """The review/block rows of ``scored`` under fresh transaction ids (``…/alert``)."""
    index = scored.alert_index()
    tx = scored.tx.take(index)
    tx.tx_id = [f"{t}/alert" for t in tx.tx_id]
    return replace(
        scored,
        tx=tx,
        features=scored.features[index],
        score=scored.score[index],
        decision=scored.decision[index],
        reasons=[scored.reasons[i] for i in index.tolist()],
        partition=scored.partition[index],
        offset=scored.offset[index],
    )


def store_rates(
    bundle: Bundle,
    store: Store,
    *,
    rows: int = 200_000,
    batch: int = 5_000,
    windows: int = 200,
    accounts: int = 20_000,
    seed: int = 3,
) -> dict[str, float]:
    """Rows per second ``store`` commits, per table, on the bench's scored batches.

    ``enriched_rows_per_s``: every transaction with its alerts, one commit per ``batch`` (the
    store stage of ``stage_costs``). ``alert_rows_per_s``: the review/block rows of each batch
    alone (as many as one detector batch carries), one commit each; they also go to
    ``transactions_enriched``, so this bounds the alerts' own rate from below.
    ``window_rows_per_s``: one window-statistics row per commit, ``windows`` times.
    ``alert_share``: alerts per transaction in these batches. ``store`` is opened and closed here.
    """
    clock = StageClock()
    scored = list(
        _scored_batches(bundle, clock, rows=rows, batch=batch, accounts=accounts, seed=seed)
    )
    alerts = [_alerts_only(s) for s in scored]
    n_alerts = sum(len(a) for a in alerts)
    store.open()
    try:
        with clock("enriched"):
            for s in scored:
                store.write(s)
                store.flush()
        with clock("alerts"):
            for a in alerts:
                store.write(a)
                store.flush()
        with clock("windows"):
            for i in range(windows):
                end_ms = 1_000 * (i + 1)
                store.write_window_stats([WindowStats(end_ms, 30_000, 900, 1, 9, 9e5, 1e3)])
                store.flush()
    finally:
        store.close()
    seconds = clock.seconds
    return {
        "enriched_rows_per_s": rows / seconds["enriched"],
        "alert_rows_per_s": n_alerts / seconds["alerts"],
        "window_rows_per_s": windows / seconds["windows"],
        "alert_share": n_alerts / rows,
    }


def postgres_store_rates(bundle: Bundle, url: str, **options: int) -> dict[str, float]:
    """``store_rates`` of the PostgreSQL store at ``url``, in a scratch schema dropped after."""
    import psycopg
    from psycopg import sql

    from fraudstream.sinks import open_store

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        return store_rates(bundle, open_store(url, schema=schema), **options)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
