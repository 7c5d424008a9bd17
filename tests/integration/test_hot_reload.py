"""A running detector ignores new candidate bundles and switches, between batches and without a
restart, to a bundle once it is promoted (an incompatible promoted bundle is skipped)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from fraudstream.model import Bundle, latest_bundle, promote, promoted_version, train_bundle
from fraudstream.schema import encode_paysim
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import open_store
from fraudstream.stream import DetectorTopics, ModelWatcher, ensure_topics

from ._kafka_util import build_detector, produce_raw

pytestmark = pytest.mark.integration

N = 8_000


def publish(bundle_dir: Path, models_root: Path) -> None:
    """Copy a bundle in as a deployment would: under a hidden name, then one rename."""
    tmp = models_root / f".incoming-{bundle_dir.name}"
    shutil.copytree(bundle_dir, tmp)
    tmp.rename(models_root / bundle_dir.name)


def test_candidates_are_ignored_until_promoted_then_hot_reloaded(
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
    assert running is not None and running.name == bundle.version
    publish(running, root)
    promote(root, running.name)

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
        batch_max=200,
        models=ModelWatcher(root, bundle, check_every_s=0.0),
    )
    # stored rows → what happens: the newer candidate arrives; the incompatible bundle is
    # promoted (skipped); the newer candidate is promoted (taken over)
    steps = [
        (N // 5, lambda: publish(newer, root)),
        (2 * N // 5, lambda: publish(other_mode, root)),
        (3 * N // 5, lambda: promote(root, other_mode.name)),
        (4 * N // 5, lambda: promote(root, newer.name)),
    ]
    promoted_at_ms: list[int] = []

    def should_stop() -> bool:
        stored = store.count_transactions()
        if steps and stored >= steps[0][0]:
            if len(steps) == 1:
                promoted_at_ms.append(int(time.time() * 1000))
            steps.pop(0)[1]()
        return stored >= N

    try:
        detector.run(should_stop, idle_exit_s=10)
    finally:
        store.close()

    assert not steps and promoted_version(root) == newer.name
    with sqlite3.connect(tmp_path / "store.db") as conn:
        by_version = conn.execute(
            "SELECT model_version, count(*), min(processed_at_ms), max(processed_at_ms) "
            "FROM transactions_enriched GROUP BY model_version ORDER BY 3"
        ).fetchall()
        versions = {row[0] for row in conn.execute("SELECT version FROM model_versions")}
    assert [v for v, *_ in by_version] == [bundle.version, newer.name], by_version
    (_, old_rows, _, old_last), (_, new_rows, new_first, _) = by_version
    assert old_rows + new_rows == N
    # the candidate sat in models/ from N/5 rows on and nothing switched before its promotion
    assert old_rows >= 4 * N // 5 and new_rows > 0
    assert new_first >= promoted_at_ms[0] - 5 and old_last <= new_first
    assert other_mode.name not in versions and newer.name in versions
