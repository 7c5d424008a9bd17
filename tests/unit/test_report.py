"""The training report: files, plots and confusion counts consistent with the test metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudstream.errors import ModelError
from fraudstream.model import train_bundle
from fraudstream.model._report import _confusion_counts, write_report
from tests.unit.test_model import synthetic_history


def test_report_is_written_into_the_bundle(tmp_path: Path) -> None:
    bundle = train_bundle(synthetic_history(6000, seed=4), seed=0)
    with pytest.raises(ModelError):
        write_report(bundle)  # not saved yet
    path = bundle.save(tmp_path)
    files = write_report(bundle)
    names = {f.name for f in files}
    assert {"report.md", "report.html", "results_pr_roc.png", "results_cost.png"} <= names
    for f in files:
        assert f.parent == path and f.stat().st_size > 200
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (path / "report.md").read_text()
    ap = bundle.metrics["lightgbm"]["average_precision"]
    assert f"{ap:.4f}" in md
    assert "results_importance.png" in (path / "report.html").read_text()
    ev = bundle.evaluation
    assert ev is not None
    y = np.asarray(ev["label"]) == 1
    counts = _confusion_counts(ev["scores"], y, ev["thresholds"])
    review = counts["lightgbm"]["review"]
    assert sum(map(sum, review)) == len(y)
    assert review[0][1] + review[1][1] == bundle.metrics["lightgbm"]["review"]["flagged"]
    assert review[1][0] + review[1][1] == int(y.sum())
