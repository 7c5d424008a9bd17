"""Integration fixtures: one real broker per test session, unique topics and groups per test.

The broker is ``FRAUDSTREAM_TEST_BOOTSTRAP`` if set (any real Kafka), else the embedded Tansu
started once on a free port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fraudstream.broker import EmbeddedBroker, free_port
from fraudstream.model import Bundle, train_bundle
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
    """A bundle trained once per session on simulated history (small, seconds to train)."""
    root = tmp_path_factory.mktemp("models")
    history = PaySimSimulator(accounts=5_000, seed=11).history(80_000)
    train_bundle(history, mode="pre_auth", seed=0, gap_ms=30_000).save(root)
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
