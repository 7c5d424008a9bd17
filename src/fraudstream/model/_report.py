"""The training report: Markdown + HTML + PNG plots written into the bundle directory."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve, roc_curve

from fraudstream.errors import ModelError
from fraudstream.model._bundle import Bundle
from fraudstream.model._costs import Costs, Thresholds, decide, expected_cost

__all__ = ["write_report"]

F64 = npt.NDArray[np.float64]
_COST_POINTS = 200


def write_report(bundle: Bundle) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the PNG plots; return the files written.

    Needs a freshly trained, saved bundle (its test-set ``evaluation`` and ``path``).
    """
    ev, out = bundle.evaluation, bundle.path
    if ev is None or out is None:
        raise ModelError("a report needs a freshly trained bundle that has been saved")
    import matplotlib

    matplotlib.use("Agg")
    y = np.asarray(ev["label"]) == 1
    scores: dict[str, F64] = ev["scores"]
    thresholds: dict[str, Thresholds] = ev["thresholds"]
    pngs = {
        "results_pr_roc.png": _pr_roc(scores, y),
        "results_confusion.png": _confusion(scores, y, thresholds),
        "results_cost.png": _cost_curve(scores, ev["label"], ev["amount"], ev["costs"]),
        "results_importance.png": _importance(bundle),
    }
    written = []
    for name, fig in pngs.items():
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        written.append(out / name)
    md = _markdown(bundle, list(pngs), _confusion_counts(scores, y, thresholds))
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(_html(bundle.version, md, list(pngs)))
    return [*written, out / "report.md", out / "report.html"]


def _figure(ncols: int = 1) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.2))
    return fig, axes


def _pr_roc(scores: dict[str, F64], y: npt.NDArray[np.bool_]) -> Any:
    fig, (pr, roc) = _figure(2)
    for name, s in scores.items():
        p, r, _ = precision_recall_curve(y, s)
        pr.plot(r, p, label=name)
        fpr, tpr, _ = roc_curve(y, s)
        roc.plot(fpr, tpr, label=name)
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall (test)")
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (test)")
    roc.plot([0, 1], [0, 1], ls=":", c="grey")
    for ax in (pr, roc):
        ax.legend()
    return fig


def _confusion_counts(
    scores: dict[str, F64], y: npt.NDArray[np.bool_], thresholds: dict[str, Thresholds]
) -> dict[str, dict[str, list[list[int]]]]:
    """Per model and step: ``[[TN, FP], [FN, TP]]`` of ``score >= threshold``."""
    out: dict[str, dict[str, list[list[int]]]] = {}
    for name, s in scores.items():
        out[name] = {}
        for step in ("review", "block"):
            flag = s >= getattr(thresholds[name], step)
            out[name][step] = [
                [int(np.sum(~y & ~flag)), int(np.sum(~y & flag))],
                [int(np.sum(y & ~flag)), int(np.sum(y & flag))],
            ]
    return out


def _confusion(
    scores: dict[str, F64], y: npt.NDArray[np.bool_], thresholds: dict[str, Thresholds]
) -> Any:
    counts = _confusion_counts(scores, y, thresholds)
    fig, axes = _figure(4)
    panels = [(m, step) for m in counts for step in ("review", "block")]
    for ax, (model, step) in zip(axes, panels, strict=True):
        cm = np.array(counts[model][step])
        shade = np.log1p(cm)
        ax.imshow(shade, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            dark = shade[i, j] > 0.6 * shade.max()
            ax.text(j, i, f"{v:,}", ha="center", va="center", c="white" if dark else "black")
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["pass", "flag"],
            yticklabels=["good", "fraud"],
            title=f"{model}: {step} ≥ {getattr(thresholds[model], step):.3g}",
        )
    return fig


def _cost_curve(scores: dict[str, F64], label: Any, amount: F64, costs: Costs) -> Any:
    """Expected test cost when reviewing every row scoring at or above a threshold."""
    fig, ax = _figure()
    for name, s in scores.items():
        cuts = np.unique(np.quantile(s, np.linspace(0.0, 1.0, _COST_POINTS)))
        cost = [
            expected_cost(decide(s, Thresholds(review=c, block=2.0)), label, amount, costs)
            for c in cuts
        ]
        ax.plot(cuts, cost, label=name)
    ax.set(xlabel="review threshold", ylabel="expected cost (test)", title="cost curve")
    ax.legend()
    return fig


def _importance(bundle: Bundle) -> Any:
    gain = bundle.booster.feature_importance(importance_type="gain")
    order = np.argsort(gain)[-20:]
    fig, ax = _figure()
    ax.barh([bundle.feature_names[i] for i in order], gain[order])
    ax.set(xlabel="total gain", title="LightGBM feature importance (top 20)")
    return fig


def _markdown(bundle: Bundle, pngs: list[str], counts: dict[str, Any]) -> str:
    m = bundle.metrics
    lines = [f"# Training report — {bundle.version}", "", f"Mode: `{bundle.mode}`.", ""]
    lines += ["| metric | " + " | ".join(counts) + " |", "|---|" + "---|" * len(counts)]
    for key in ("average_precision", "roc_auc", "precision_at_100", "recall_at_1pct_fpr"):
        vals = [m.get(name, {}).get(key) for name in counts]
        lines.append(f"| {key} | " + " | ".join(_fmt(v) for v in vals) + " |")
    lines += ["", "Confusion matrices `[[TN, FP], [FN, TP]]` on the test part:", ""]
    for name, steps in counts.items():
        for step, cm in steps.items():
            lines.append(f"- {name}, {step}: `{cm}`")
    lines += ["", "Data and split:", "", "```json", json.dumps(m.get("data", {}), indent=2), "```"]
    lines += [""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _html(version: str, md: str, pngs: list[str]) -> str:
    body = html.escape("\n".join(ln for ln in md.splitlines() if not ln.startswith("![")))
    imgs = "".join(f'<p><img src="{p}" alt="{p}"></p>' for p in pngs)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(version)}</title>"
        f"</head><body><pre>{body}</pre>{imgs}</body></html>\n"
    )
