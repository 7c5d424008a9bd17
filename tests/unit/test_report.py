"""The training report: files, plots and confusion counts consistent with the test metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudstream.errors import ModelError
from fraudstream.model import train_bundle
from fraudstream.model._report import _confusion_counts, _html, _md, _table, write_report
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


def test_report_html_is_rendered_html_with_tables_and_linked_plots(tmp_path: Path) -> None:
    bundle = train_bundle(synthetic_history(6000, seed=4), seed=0)
    path = bundle.save(tmp_path)
    write_report(bundle)
    page = (path / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<meta charset='utf-8'>" in page
    assert "<pre" not in page and "```" not in page and "| metric |" not in page
    assert f"<h1>Training report — {bundle.version}</h1>" in page
    assert page.count("<table>") >= 3  # metrics, selection, thresholds, data
    assert f"<th>{bundle.scoring_model} (scoring)</th>" in page
    assert f"<code>fraudstream model promote {bundle.version}</code>" in page
    ap = bundle.metrics["lightgbm"]["average_precision"]
    assert f"<td>{ap:.4f}</td>" in page
    for png in ("results_pr_roc.png", "results_confusion.png", "results_cost.png"):
        assert f'<img src="{png}"' in page  # relative to the bundle directory
        assert (path / png).is_file()
    assert bundle.metrics["selection"]["reason"].split(":")[0] in page


def test_values_in_the_report_are_escaped_never_markup() -> None:
    hostile = "<script>alert(1)</script> | *x* [a](javascript:1) &amp; -"
    md = "\n".join(
        ["# t", "", *_table(["field", "value"], [[_md("k"), _md(hostile)]]), _md(hostile)]
    )
    page = _html("v<1>", md)
    assert "<script>" not in page and "<em>" not in page and "<a " not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | *x* [a](javascript:1) &amp;amp; -" in page
    assert "<title>Training report — v&lt;1&gt;</title>" in page
    assert page.count("<td>") == 2  # the pipe stayed inside its cell
    assert _md("- a") == "\\- a" and "<li>" not in _html("v", _md("- a"))
