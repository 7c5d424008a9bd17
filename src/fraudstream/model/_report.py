"""The training report: Markdown + HTML + PNG plots written into the bundle directory.

``report.md`` is written first; ``report.html`` is the same Markdown rendered by markdown-it
(CommonMark with tables, raw HTML disabled), the plots linked relative to the bundle directory,
so the directory can be moved or archived whole.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from markdown_it import MarkdownIt
from sklearn.metrics import precision_recall_curve, roc_curve

from fraudstream.errors import ModelError
from fraudstream.model._bundle import Bundle
from fraudstream.model._costs import NEVER, Costs, Thresholds, decide, expected_cost

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
    (out / "report.html").write_text(_html(bundle.version, md))
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


_METRICS: Final = (
    ("average_precision", "average precision"),
    ("roc_auc", "ROC AUC"),
    ("precision_at_100", "precision of the 100 highest scores"),
    ("recall_at_1pct_fpr", "recall at 1% false positives"),
    ("alerts", "alerts (review + block)"),
    ("expected_cost", "expected cost"),
    ("expected_cost_allow_all", "expected cost, everything allowed"),
)
_CAPTIONS: Final = {
    "results_pr_roc.png": "precision-recall and ROC curves on the test part",
    "results_confusion.png": "confusion matrices at the review and block thresholds",
    "results_cost.png": "expected cost by review threshold",
    "results_importance.png": "LightGBM feature importance",
}
_CONFUSION: Final = ("good passed", "good flagged", "fraud passed", "fraud flagged")
_CSS: Final = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}table{border-collapse:collapse;margin:0.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:0.25rem 0.6rem}th{background:#f3f3f3}"
    "td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}"
    "img{max-width:100%}code{background:#f3f3f3;padding:0 0.2rem}"
)


def _markdown(bundle: Bundle, pngs: list[str], counts: dict[str, Any]) -> str:
    """The report as Markdown: summary, warnings, metrics, thresholds, confusion, data, plots."""
    m = bundle.metrics
    models = list(counts)
    lines = [f"# Training report — {_md(bundle.version)}", ""]
    lines += _summary(bundle)
    lines += _refit(m.get("refit"))
    warnings = m.get("quality", {}).get("warnings", [])
    if warnings:
        lines += ["## Warnings", ""] + [f"- {_md(w)}" for w in warnings] + [""]
    heads = [f"{_md(n)} (scoring)" if n == bundle.scoring_model else _md(n) for n in models]
    lines += ["## Test metrics", ""]
    lines += _table(
        ["metric", *heads],
        [[label, *(_fmt(m.get(n, {}).get(key)) for n in models)] for key, label in _METRICS],
    )
    lines += _selection(m.get("selection"))
    lines += ["## Thresholds and confusion matrices on the test part", ""]
    rows = []
    for name, steps in counts.items():
        for step, ((tn, fp), (fn, tp)) in steps.items():
            at = m.get(name, {}).get(step, {})
            rows.append(
                [_md(name), step, _threshold(at.get("threshold")), *map(_fmt, (tn, fp, fn, tp))]
            )
    lines += _table(["model", "step", "score ≥", *_CONFUSION], rows)
    lines += ["## Data and split", ""]
    lines += _table(
        ["field", "value"], [[_md(k), _datum(k, v)] for k, v in m.get("data", {}).items()]
    )
    lines += ["## Plots", ""]
    lines += [f"![{_md(_CAPTIONS.get(p, p))}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def _summary(bundle: Bundle) -> list[str]:
    created = bundle.info.get("created_at", "")
    when = f", created {_md(created)} (UTC)" if created else ""
    return [
        f"Mode {_code(bundle.mode)}, {len(bundle.feature_names)} features, scoring model "
        f"**{_md(bundle.scoring_model)}**{when}.",
        "",
        "A bundle scores only once promoted: "
        f"{_code(f'fraudstream model promote {bundle.version}')} (or {_code('train --promote')}).",
        "",
    ]


def _refit(refit: dict[str, Any] | None) -> list[str]:
    """``train --refit``: the figures below are the validated models', not the shipped ones'."""
    if not refit:
        return []
    return [
        f"**Refit:** the shipped models were fitted again, after validation, on all "
        f"{_fmt(refit.get('rows'))} labelled rows ({_fmt(refit.get('frauds'))} frauds) from "
        f"{_datum('start_ms', refit.get('start_ms'))} to {_datum('end_ms', refit.get('end_ms'))}, "
        "with the validated parameters and rounds; calibration and thresholds are the validated "
        "models' (fitted on the calibration part). Every figure below is the validated models'.",
        "",
    ]


def _selection(selection: dict[str, Any] | None) -> list[str]:
    """Why the scoring model was chosen, with each model's figures on the validation part."""
    if not selection:
        return []
    lines = ["## Model selection (validation part)", "", _md(str(selection.get("reason", ""))), ""]
    validation: dict[str, dict[str, Any]] = selection.get("validation", {})
    if validation:
        lines += _table(
            ["model", "expected cost", "average precision"],
            [
                [_md(n), _fmt(v.get("expected_cost")), _fmt(v.get("average_precision"))]
                for n, v in validation.items()
            ],
        )
    return lines


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _datum(key: str, value: object) -> str:
    """A data-summary value; an event time in ms also as a UTC date and time."""
    if key.endswith("_ms") and key != "gap_ms" and isinstance(value, int):
        at = dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{at} UTC ({value:,} ms)"
    return _fmt(value)


def _threshold(value: object) -> str:
    if isinstance(value, float) and value >= NEVER:
        return "never"
    return _fmt(value)


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return _md(str(value))


def _md(text: str) -> str:
    """``text`` as literal Markdown: punctuation escaped, so data can never become markup."""
    out = "".join(f"\\{c}" if c in _MD_SPECIAL else " " if c in "\r\n" else c for c in text)
    return f"\\{out}" if out[:1] in ("-", "+") else out


def _code(text: str) -> str:
    """``text`` as a Markdown code span (backslashes are literal there; backticks cannot be)."""
    return "`" + text.replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


#: Characters that can start markup anywhere in a line (a leading - or + is escaped too).
_MD_SPECIAL: Final = frozenset("\\`*_[]<>#|!&~")


def _html(version: str, md: str) -> str:
    """``md`` rendered as an HTML page (raw HTML in it is escaped, never passed through)."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Training report — {html.escape(version)}</title>"
        f"<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n"
    )
