"""Integration fixtures: one real broker per test session, unique topics and groups per test.

The broker is ``FRAUDSTREAM_TEST_BOOTSTRAP`` if set (any real Kafka), else the embedded Tansu
started once on a free port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from fraudstream.broker import EmbeddedBroker, free_port
from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle, Thresholds, promote, train_bundle
from fraudstream.simulate import PaySimSimulator

from ._pg_util import PG_URL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("FRAUDSTREAM_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log_path) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def client(bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap}


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and group names, so tests never share state."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained once per session on simulated history (small, seconds to train).

    The plumbing tests need alerts, and the cost-chosen thresholds of a model this small may
    alert on nothing: its thresholds are put at the 99th / 99.9th percentile of its scores on
    fresh simulated traffic (the threshold choice itself is tested in ``tests/unit``).
    """
    root = tmp_path_factory.mktemp("models")
    history = PaySimSimulator(accounts=5_000, seed=11).history(80_000)
    bundle = train_bundle(history, mode="pre_auth", seed=0, gap_ms=30_000)
    fresh = PaySimSimulator(accounts=5_000, seed=12).history(20_000)
    scores = bundle.score(FeatureEngine(mode="pre_auth").update_and_extract(fresh))
    bundle.thresholds = Thresholds(
        review=float(np.quantile(scores, 0.99)), block=float(np.quantile(scores, 0.999))
    )
    bundle.save(root)
    promote(root, bundle.version)  # in service: `detect` loads only a promoted bundle
    return root


@pytest.fixture(scope="session")
def bundle(models_dir: Path) -> Bundle:
    from fraudstream.model import latest_bundle

    path = latest_bundle(models_dir)
    assert path is not None
    return Bundle.load(path)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped (with everything in it) at the end of the test."""
    name = f"fs_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
