"""A challenger bundle scored in shadow: its decisions are stored beside the champion's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import psycopg
import pytest

from fraudstream.errors import ModelError
from fraudstream.model import Bundle, train_bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics, ensure_topics

from ._kafka_util import build_detector, produce_raw
from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

N = 3_000


@pytest.fixture(scope="module")
def challenger(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    history = PaySimSimulator(accounts=5_000, seed=21).history(40_000)
    root = tmp_path_factory.mktemp("challenger")
    return Bundle.load(train_bundle(history, mode="pre_auth", seed=3, gap_ms=30_000).save(root))


def shadow_table(url: str, schema: str | None) -> list[tuple[str, str, float, str]]:
    query = "SELECT tx_id, model_version, score, decision FROM shadow_decisions ORDER BY tx_id"
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(query))
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_challenger_decisions_are_stored_beside_the_champions(
    backend: str,
    client: dict[str, str],
    unique: str,
    tmp_path: Path,
    bundle: Bundle,
    challenger: Bundle,
    pg_schema: str,
) -> None:
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=4)
    records = PaySimSimulator(accounts=2_000, seed=8).next_batch(N)
    produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])
    url = f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else PG_URL
    store = open_store(url, schema=None if backend == "sqlite" else pg_schema)
    store.open()
    det = build_detector(client, topics, f"g-{unique}", store, bundle, challenger=challenger)
    try:
        det.run(lambda: store.count_transactions() >= N, idle_exit_s=10)
    finally:
        store.close()

    rows = shadow_table(url, pg_schema)
    assert len(rows) == N and {r[1] for r in rows} == {challenger.version}
    assert challenger.version != bundle.version
    scores = np.array([r[2] for r in rows])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert {r[3] for r in rows} <= {"allow", "review", "block"}


def test_challenger_with_other_features_is_refused(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle
) -> None:
    history = PaySimSimulator(accounts=5_000, seed=22).history(40_000)
    other = train_bundle(history, mode="post_tx", seed=3, gap_ms=30_000)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    with pytest.raises(ModelError, match="shadow scoring needs the same"):
        build_detector(client, topics, f"g-{unique}", store, bundle, challenger=other)


def test_the_registered_challenger_is_followed_without_a_restart(
    client: dict[str, str], unique: str, tmp_path: Path, bundle: Bundle, challenger: Bundle
) -> None:
    """``fraudstream retrain`` registers a challenger, the gate clears it: a running detector
    that follows the registry starts and stops shadow scoring at the next batch."""
    from fraudstream.model import promote
    from fraudstream.model._registry import set_challenger
    from fraudstream.stream import ModelWatcher

    models = tmp_path / "models"
    for b in (bundle, challenger):
        assert b.path is not None
        shutil.copytree(b.path, models / b.path.name)
    promote(models, bundle.version)
    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=4)
    records = PaySimSimulator(accounts=2_000, seed=9).next_batch(3 * N)
    items = [(r.nameOrig.encode(), encode_paysim(r)) for r in records]
    produce_raw(client, topics.source, items[:N])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.open()
    watcher = ModelWatcher(models, bundle, check_every_s=0.0, follow_challenger=True)
    det = build_detector(client, topics, f"g-{unique}", store, bundle, models=watcher)
    phase = [1]

    def step() -> bool:  # between batches: register, then clear, the challenger
        stored = store.count_transactions()
        if stored >= phase[0] * N and phase[0] < 3:
            set_challenger(models, challenger.version if phase[0] == 1 else None)
            produce_raw(client, topics.source, items[phase[0] * N : (phase[0] + 1) * N])
            phase[0] += 1
        return stored >= 3 * N

    try:
        det.run(step, idle_exit_s=20)
    finally:
        store.close()
    rows = shadow_table(url, None)
    assert len(rows) == N and {r[1] for r in rows} == {challenger.version}
