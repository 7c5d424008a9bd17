"""``fraudstream model list | promote``, ``detect`` without a promoted bundle, ``train`` refusing
a history too short for meaningful metrics: real processes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.model import latest_bundle, list_bundles

pytestmark = pytest.mark.integration


def fraudstream(models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FRAUDSTREAM_MODELS_DIR": str(models),
        "FRAUDSTREAM_DATA_DIR": str(models.parent / "data"),
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
        "COLUMNS": "300",  # a one-line error stays on one line
    }
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def candidate(source: Path, models: Path, name: str, *, meaningful: bool) -> str:
    """A copy of ``source`` under ``models`` named ``name``, its test metrics marked or not."""
    target = models / name
    shutil.copytree(source, target)
    manifest = json.loads((target / "bundle.json").read_text())
    manifest.update(version=name, metrics_meaningful=meaningful)
    (target / "bundle.json").write_text(json.dumps(manifest))
    return name


def test_detect_needs_a_promoted_bundle_and_promote_puts_one_in_service(
    tmp_path: Path, models_dir: Path
) -> None:
    source = latest_bundle(models_dir)
    assert source is not None
    models = tmp_path / "models"
    models.mkdir()
    out = fraudstream(models, "detect", "--idle-exit", "1")
    assert out.returncode != 0 and "run `fraudstream train --promote` first" in out.stderr

    first = candidate(source, models, "20260101T000000Z-aaaaaaaa", meaningful=True)
    weak = candidate(source, models, "20260102T000000Z-bbbbbbbb", meaningful=False)
    out = fraudstream(models, "detect", "--idle-exit", "1")
    assert out.returncode != 0
    (line,) = out.stderr.strip().splitlines()
    assert "no promoted model bundle" in line and f"fraudstream model promote {weak}" in line

    listed = fraudstream(models, "model", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [ln for ln in listed.stdout.splitlines() if "2026010" in ln]
    assert len(rows) == 2 and all("candidate" in r for r in rows)
    assert "(too few)" in rows[1] and "(too few)" not in rows[0]

    refused = fraudstream(models, "model", "promote", weak)
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert latest_bundle(models) is None
    unknown = fraudstream(models, "model", "promote", "nope")
    assert unknown.returncode != 0 and "no bundle 'nope'" in unknown.stderr

    assert fraudstream(models, "model", "promote", first).returncode == 0
    assert latest_bundle(models) == models / first
    forced = fraudstream(models, "model", "promote", weak, "--force")
    assert forced.returncode == 0 and f"replaces {first}" in forced.stdout
    assert [(b.version, b.status) for b in list_bundles(models)] == [
        (first, "retired"),
        (weak, "promoted"),
    ]


def test_train_refuses_a_history_with_too_few_test_frauds(tmp_path: Path) -> None:
    models = tmp_path / "models"
    out = fraudstream(models, "train", "--rows", "30000")
    assert out.returncode != 0
    (line,) = out.stderr.strip().splitlines()
    assert "the test part has" in line and "frauds in 7,500 rows" in line
    assert "at least 30" in line and "rows of this history" in line, line
    assert not models.exists() or not list(models.iterdir())
