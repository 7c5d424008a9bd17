"""Per-stage cost of the hot path, in µs per transaction, measured in-process on real batches."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle
from fraudstream.schema import ScoredBatch, decode_paysim, encode_paysim, paysim_to_batch
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import SQLiteStore, Store

__all__ = ["stage_costs"]


class _Clock:
    """Accumulates wall time per stage: ``with clock("features"): …``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


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
    records = PaySimSimulator(accounts=accounts, seed=seed).next_batch(rows)
    values = [encode_paysim(r) for r in records]
    engine = FeatureEngine(mode=bundle.mode)  # type: ignore[arg-type]
    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:
        store = store or SQLiteStore(Path(tmp) / "bench.db")
        store.open()
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
                idx = np.flatnonzero(decision > 0)
                reasons: list[list[tuple[str, float, float]]] = [[] for _ in range(len(tx))]
                for i, why in zip(idx.tolist(), bundle.explain(x[idx]), strict=True):
                    reasons[i] = why
            scored = ScoredBatch(
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
            with clock(f"store_{store_label}"):
                store.write(scored)
                store.flush()
        store.close()
    totals = clock.seconds
    return {name: seconds * 1e6 / rows for name, seconds in totals.items()}
