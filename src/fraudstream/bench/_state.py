"""Bytes of feature state per account, measured with tracemalloc on a population of accounts."""

from __future__ import annotations

import gc
import sys
import tracemalloc

from fraudstream.features import FeatureEngine
from fraudstream.simulate import PaySimSimulator

__all__ = ["state_bytes_per_account"]


def state_bytes_per_account(
    *, accounts: int = 1_000_000, rows: int = 2_000_000, mode: str = "pre_auth", seed: int = 5
) -> dict[str, float]:
    """Replay ``rows`` over ``accounts`` accounts; Python heap growth of the engine per entity.

    The history is generated before tracing starts, so the id strings are not in the traced
    growth; a detector keeps them alive (they are decoded from messages), so their size is added.
    """
    sim = PaySimSimulator(accounts=accounts, seed=seed)
    chunk = min(100_000, rows)
    batches = [sim.history(chunk) for _ in range(max(1, rows // chunk))]
    gc.collect()
    tracemalloc.start()
    engine = FeatureEngine(mode=mode)  # type: ignore[arg-type]
    before, _ = tracemalloc.get_traced_memory()
    for b in batches:
        engine.update_and_extract(b)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    entities = engine.entity_count()
    ids = {a for b in batches for a in (*b.account, *b.counterparty)}
    id_bytes = sum(sys.getsizeof(i) for i in ids)
    distinct_accounts = len({a for b in batches for a in b.account})
    total = after - before + id_bytes
    return {
        "entities": float(entities),
        "accounts_with_state": float(distinct_accounts),
        "engine_heap_bytes": float(after - before),
        "id_bytes": float(id_bytes),
        "state_bytes_per_entity": total / max(entities, 1),
        "state_bytes_per_account": total / max(distinct_accounts, 1),
    }
