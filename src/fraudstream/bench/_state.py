"""Bytes of feature state per account, measured with tracemalloc on a population of accounts."""

from __future__ import annotations

import gc
import tracemalloc

from fraudstream.features import FeatureEngine
from fraudstream.simulate import PaySimSimulator

__all__ = ["bounded_state", "state_bytes_per_account"]


def state_bytes_per_account(
    *, accounts: int = 1_000_000, rows: int = 2_000_000, mode: str = "pre_auth", seed: int = 5
) -> dict[str, float]:
    """Replay ``rows`` over ``accounts`` accounts; bytes of feature state per account.

    The state is columnar (``features._state``): its arrays' bytes at allocated capacity, checked
    against the traced heap growth (tracemalloc sees numpy's buffers); the larger counts. No id
    strings are kept (entities are keyed by 64-bit hashes), so none are added.
    """
    sim = PaySimSimulator(accounts=accounts, seed=seed)
    chunk = min(100_000, rows)
    batches = [sim.history(chunk) for _ in range(max(1, rows // chunk))]
    engine = FeatureEngine(mode=mode)  # type: ignore[arg-type]
    engine.warm_up()
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for b in batches:
        engine.update_and_extract(b)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    entities = engine.entity_count()
    distinct_accounts = len({a for b in batches for a in b.account})
    total = max(after - before, engine.state_bytes())
    return {
        "entities": float(entities),
        "accounts_with_state": float(distinct_accounts),
        "engine_heap_bytes": float(after - before),
        "state_array_bytes": float(engine.state_bytes()),
        "state_bytes_per_entity": total / max(entities, 1),
        "state_bytes_per_account": total / max(distinct_accounts, 1),
    }


def bounded_state(
    *,
    ttl_ms: int = 1_800_000,
    hours: int = 6,
    rate_per_s: float = 100.0,
    accounts: int = 100_000,
    seed: int = 6,
) -> dict[str, list[float]]:
    """Entities held at each event-time hour, with ``ttl_ms`` eviction and without (30 days).

    The stream runs ``hours`` of event time at ``rate_per_s``; with eviction the count levels
    off at the entities active within about one TTL, without it grows with every new account.
    """
    per_hour = int(rate_per_s * 3600)
    out: dict[str, list[float]] = {"hour": [], "entities_with_ttl": [], "entities_without": []}
    sim = PaySimSimulator(accounts=accounts, seed=seed, rate_per_s=rate_per_s)
    short = FeatureEngine(ttl_ms=ttl_ms)
    long = FeatureEngine()
    chunks = -(-per_hour // 50_000)
    for hour in range(1, hours + 1):
        for _ in range(chunks):
            batch = sim.history(per_hour // chunks)
            short.update_and_extract(batch)
            long.update_and_extract(batch)
        out["hour"].append(float(hour))
        out["entities_with_ttl"].append(float(short.entity_count()))
        out["entities_without"].append(float(long.entity_count()))
    return out
