"""A bundle published while the detector runs is picked up between batches, without a restart."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from fraudstream.model import Bundle, latest_bundle, train_bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics, ModelWatcher, ensure_topics

from ._kafka_util import build_detector, produce_raw

pytestmark = pytest.mark.integration

N = 6_000


def publish(bundle_dir: Path, models_root: Path) -> None:
    """Copy a bundle in as a deployment would: under a hidden name, then one rename."""
    tmp = models_root / f".incoming-{bundle_dir.name}"
    shutil.copytree(bundle_dir, tmp)
    tmp.rename(models_root / bundle_dir.name)


def test_new_bundle_is_hot_reloaded_and_incompatible_one_skipped(
    client: dict[str, str], unique: str, tmp_path: Path, models_dir: Path, bundle: Bundle
) -> None:
    history = PaySimSimulator(accounts=5_000, seed=12).history(40_000)
    staged = tmp_path / "staged"
    staged.mkdir()
    other_mode = train_bundle(history, mode="post_tx", seed=1, gap_ms=30_000).save(staged)
    newer = train_bundle(history, mode="pre_auth", seed=2, gap_ms=30_000).save(staged)
    root = tmp_path / "models"
    root.mkdir()
    running = latest_bundle(models_dir)
    assert running is not None
    publish(running, root)

    topics = DetectorTopics(f"tx-{unique}", f"alerts-{unique}", f"dlq-{unique}")
    ensure_topics(client, [topics.source, topics.alerts, topics.dlq], partitions=4)
    records = PaySimSimulator(accounts=2_000, seed=4).next_batch(N)
    produce_raw(client, topics.source, [(r.nameOrig.encode(), encode_paysim(r)) for r in records])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.open()
    detector = build_detector(
        client,
        topics,
        f"g-{unique}",
        store,
        bundle,
        batch_max=300,
        models=ModelWatcher(root, bundle, check_every_s=0.0),
    )
    published: list[Path] = []

    def should_stop() -> bool:
        stored = store.count_transactions()
        if stored >= N // 3 and not published:
            publish(other_mode, root)
            published.append(other_mode)
        elif stored >= 2 * N // 3 and len(published) == 1:
            publish(newer, root)
            published.append(newer)
        return stored >= N

    try:
        detector.run(should_stop, idle_exit_s=10)
    finally:
        store.close()

    with sqlite3.connect(tmp_path / "store.db") as conn:
        by_offset = conn.execute(
            "SELECT model_version, count(*), min(processed_at_ms) FROM transactions_enriched "
            "GROUP BY model_version ORDER BY 3"
        ).fetchall()
        versions = {row[0] for row in conn.execute("SELECT version FROM model_versions")}
    assert [v for v, _, _ in by_offset] == [bundle.version, newer.name], by_offset
    assert sum(n for _, n, _ in by_offset) == N
    assert all(n > 0 for _, n, _ in by_offset)
    assert other_mode.name not in versions and newer.name in versions
