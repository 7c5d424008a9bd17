"""``fraudstream apikey create|list|revoke`` against a real SQLite store: the key is printed once,
listed without its secret, refused once revoked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.api import KeyChecker
from fraudstream.dashboard import Database

pytestmark = pytest.mark.integration


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUDSTREAM_STORE__URL": f"sqlite:///{tmp_path / 'store.db'}"}
    cmd = [sys.executable, "-m", "fraudstream", "apikey", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_apikey_create_list_revoke(tmp_path: Path) -> None:
    created = _cli(tmp_path, "create", "authoriser", "--scopes", "decide,read")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("fsk_") and len(token) == 4 + 12 + 1 + 43
    key_id = token[4:16]
    listed = _cli(tmp_path, "list")
    assert listed.returncode == 0 and key_id in listed.stdout and "decide,read" in listed.stdout
    assert token[17:] not in listed.stdout + listed.stderr  # the secret is shown once only
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert KeyChecker(db, cache_s=0).check(token) is not None
        assert _cli(tmp_path, "revoke", key_id).returncode == 0
        assert KeyChecker(db, cache_s=0).check(token) is None
    finally:
        db.close()
    assert "revoked" in _cli(tmp_path, "list").stdout
    again = _cli(tmp_path, "revoke", key_id)
    assert again.returncode == 1 and "no active API key" in again.stderr
    bad = _cli(tmp_path, "create", "x", "--scopes", "admin")
    assert bad.returncode == 1 and "admin" in bad.stderr
