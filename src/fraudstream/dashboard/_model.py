"""The Model & thresholds page: the bundle, live quality, and the what-if threshold explorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._charts import time_tooltip, time_x
from fraudstream.dashboard._context import cached, fmt_ms, fmt_pct, settings
from fraudstream.dashboard._text import md, safe_text
from fraudstream.dashboard._whatif import Labelled, WhatIf, sweep, what_if
from fraudstream.errors import FraudstreamError
from fraudstream.model import latest_bundle
from fraudstream.model._costs import Costs, Thresholds
from fraudstream.model._drift import feature_group
from fraudstream.model._registry import challenger_version
from fraudstream.sinks import Feedback

__all__ = ["feedback_table", "render"]

_HOUR_MS = 3_600_000
_QUALITY_RANGES = {"last hour": _HOUR_MS, "last 24 hours": 24 * _HOUR_MS, "everything": None}


def render() -> None:
    st.title("Model & thresholds")
    manifest = _bundle_manifest()
    _bundle_section(manifest)
    _live_quality()
    _drift()
    _retraining()
    _feedback_from_labels()
    _explorer(manifest)


@st.cache_data(ttl=30.0, show_spinner=False)
def _read_manifest(models_dir: str) -> dict[str, Any] | None:
    path = latest_bundle(Path(models_dir))
    if path is None:
        return None
    manifest: dict[str, Any] = json.loads((path / "bundle.json").read_text())
    manifest["_path"] = str(path)
    manifest["_plots"] = sorted(str(p) for p in path.rglob("*.png"))
    return manifest


def _bundle_manifest() -> dict[str, Any] | None:
    return _read_manifest(str(settings().models_dir))


def _bundle_section(manifest: dict[str, Any] | None) -> None:
    st.subheader("Model bundle in service")
    if manifest is None:
        st.info(
            f"No bundle in service under {md(settings().models_dir)}: run `fraudstream train "
            "--promote`, or `fraudstream model promote VERSION` for a trained candidate."
        )
        return
    th = manifest.get("thresholds", {})
    c = st.columns([3, 1, 1, 1])
    c[0].metric("Version", md(manifest["version"]))
    c[1].metric("Mode", md(manifest.get("mode", "?")))
    c[2].metric("Review threshold", _fmt_threshold(th.get("review")))
    c[3].metric("Block threshold", _fmt_threshold(th.get("block")))
    st.caption(md(manifest["_path"]))
    rows = _metric_rows(manifest.get("metrics", {}))
    if rows:
        st.markdown("**Test-set metrics** (time-ordered split, from training)")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for plot in manifest["_plots"]:
        st.image(plot, caption=safe_text(Path(plot).stem.replace("_", " ")))
    seen = cached(q.model_versions)
    if seen:
        with st.expander(f"Versions the detector has used ({len(seen)})"):
            st.dataframe(
                pd.DataFrame(
                    [{"version": safe_text(v), "first seen (UTC)": fmt_ms(t)} for v, t, _ in seen]
                ),
                hide_index=True,
            )


def _fmt_threshold(value: float | None) -> str:
    if value is None:
        return "?"
    return "never" if value > 1.0 else f"{value:.4f}"


def _metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scorer with its headline metrics."""
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or "roc_auc" not in m:
            continue
        rows.append(
            {
                "model": name,
                "PR-AUC": m.get("average_precision"),
                "ROC-AUC": m.get("roc_auc"),
                "precision@100": m.get("precision_at_100"),
                "recall @1% FPR": m.get("recall_at_1pct_fpr"),
                "alerts": m.get("alerts"),
                "expected cost": m.get("expected_cost"),
                "cost if all allowed": m.get("expected_cost_allow_all"),
            }
        )
    return rows


def _live_quality() -> None:
    st.subheader("Live precision and recall")
    live = cached(q.live_summary)
    version = cached(q.latest_model_version)
    choice = st.radio("Over", list(_QUALITY_RANGES), index=1, horizontal=True, key="quality")
    span = _QUALITY_RANGES[str(choice)]
    anchor = live.window_end_ms if live else 0
    since = anchor - span if span is not None else 0
    name = version[0] if version else None
    quality = cached(q.live_quality, since, name)
    c = st.columns(4)
    c[0].metric("Precision (labels)", fmt_pct(quality["precision"], 1))
    c[1].metric("Recall (labels)", fmt_pct(quality["recall"], 1))
    c[2].metric("Analyst precision", fmt_pct(quality["analyst_precision"], 1))
    c[3].metric("Alerts", f"{quality['alerts']:,}")
    st.caption(
        f"Model {md(name or 'any')}: {quality['true_alerts']:,} of {quality['labelled_alerts']:,} "
        f"labelled alerts were fraud; {quality['caught']:,} of {quality['frauds']:,} labelled "
        f"frauds raised an alert; analysts confirmed {fmt_pct(quality['analyst_precision'], 1)} "
        f"of {quality['reviewed']:,} reviewed alerts."
    )


#: Features drawn besides the score: the ones that drifted most over the windows shown.
_DRIFT_SHOWN = 6


def _drift() -> None:
    st.subheader("Drift against the training reference")
    version, frame = cached(q.drift_series)
    d = settings().drift
    if version is None:
        st.info(
            "No drift windows yet: the detector writes one per "
            f"{d.window_ms / 60_000:g} min of event time with at least {d.min_rows:,} scored "
            "transactions, for a bundle that has a drift reference (docs/drift.md)."
        )
        return
    latest = frame[frame.window_end_ms == frame.window_end_ms.max()]
    alarm = bool(latest.alarm.max())
    c = st.columns([3, 1, 1])
    c[0].metric("Model version", md(version))
    c[1].metric(
        "Score PSI, latest window", f"{float(latest[latest.feature == 'score'].psi.sum()):.3f}"
    )
    c[2].metric("Drift alarm", "ON" if alarm else "off")
    counts = [feature_group(f) in d.alarm_groups and f not in d.ignore for f in frame.feature]
    st.altair_chart(drift_chart(frame[counts], d.threshold), width="stretch")
    st.caption(
        f"PSI per {d.window_ms / 60_000:g}-minute window of event time against the bundle's "
        f"training histograms: the score and the {_DRIFT_SHOWN} features that can raise the "
        f"alarm and drifted most. Below 0.1 stable, 0.1-0.25 watch, above {d.threshold:g} "
        f"act; the alarm needs {d.alarm_windows} window(s) in a row over it. Volume and label "
        "features, and those ignored, are in the table only (docs/drift.md)."
    )
    top = latest.sort_values("psi", ascending=False).head(12)
    st.dataframe(
        pd.DataFrame(
            {
                "feature": [safe_text(f) for f in top.feature],
                "PSI": top.psi.round(3),
                "can raise the alarm": [
                    "yes" if feature_group(f) in d.alarm_groups and f not in d.ignore else "no"
                    for f in top.feature
                ],
            }
        ),
        hide_index=True,
    )


def _retraining() -> None:
    st.subheader("Retraining")
    try:
        challenger = challenger_version(Path(settings().models_dir))
    except FraudstreamError as exc:
        st.warning(f"The challenger pointer cannot be read: {md(exc)}")
        challenger = None
    if challenger is not None:
        st.markdown(
            f"Challenger in shadow: **{md(challenger)}**: scored beside the model in service, "
            "its decisions stored and never acted on, until `fraudstream retrain "
            "--promote-check` promotes or rejects it."
        )
    events = cached(q.model_events)
    if not events:
        st.info(
            "No retraining step recorded yet: `fraudstream retrain` trains a challenger from "
            "the stored transactions and the verdicts that have arrived (docs/retrain.md)."
        )
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "when (UTC)": fmt_ms(at),
                    "version": safe_text(version),
                    "step": event.replace("_", " "),
                    "model in service then": safe_text(champion),
                    "why / figures": safe_text(_event_summary(detail)),
                }
                for at, version, event, champion, detail in events
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _event_summary(detail: dict[str, Any]) -> str:
    """A retraining step's reason, or its average precisions (challenger vs champion)."""
    if reason := detail.get("reason"):
        return str(reason)
    challenger, champion = detail.get("challenger"), detail.get("champion")
    if isinstance(challenger, dict) and isinstance(champion, dict):
        return (
            f"AP {challenger.get('average_precision', 0):.4f} vs "
            f"{champion.get('average_precision', 0):.4f} in service"
        )
    return ""


def drift_chart(frame: pd.DataFrame, threshold: float) -> alt.LayerChart:
    """PSI over time (log scale) of the score and the most drifting features, with the threshold."""
    worst = (
        frame[frame.feature != "score"].groupby("feature").psi.max().nlargest(_DRIFT_SHOWN).index
    )
    shown = frame[frame.feature.isin([*worst, "score"])].copy()
    shown["time"] = pd.to_datetime(shown.window_end_ms, unit="ms", utc=True)
    shown["psi"] = shown.psi.clip(lower=1e-4)
    shown["feature"] = shown.feature.map(safe_text)
    lines = (
        alt.Chart(shown)
        .mark_line(point=True)
        .encode(
            x=time_x(title="window end, event time (UTC)"),
            y=alt.Y("psi:Q", title="PSI", scale=alt.Scale(type="log")),
            color=alt.Color("feature:N", title=None),
            strokeWidth=alt.condition("datum.feature == 'score'", alt.value(3), alt.value(1.2)),
            tooltip=["feature:N", alt.Tooltip("psi:Q", format=".3f"), time_tooltip()],
        )
    )
    rule = alt.Chart(pd.DataFrame({"psi": [threshold]})).mark_rule(color="red", strokeDash=[4, 4])
    chart: alt.LayerChart = (lines + rule.encode(y="psi:Q")).properties(height=300)
    return chart


def feedback_table(buckets: list[Feedback]) -> pd.DataFrame:
    """The feedback per alert age as display text, one row per age (the index)."""
    rows = [
        {
            "alert age": f.age,
            "alerts": f"{f.alerts:,}",
            "fraud verdicts": f"{f.fraud_verdicts:,}",
            "genuine verdicts": f"{f.genuine_verdicts:,}",
            "unlabelled": f"{f.unlabelled:,}",
            "labelled so far": fmt_pct(f.labelled_share, 1),
            "precision so far": fmt_pct(f.precision, 1),
            "recall so far": fmt_pct(f.recall, 1),
            "precision (ground truth)": fmt_pct(f.truth_precision, 1),
            "recall (ground truth)": fmt_pct(f.truth_recall, 1),
        }
        for f in buckets
    ]
    return pd.DataFrame(rows).set_index("alert age")


def _feedback_from_labels() -> None:
    st.subheader("Feedback from labels")
    st.table(feedback_table(cached(q.feedback_by_age)))
    st.caption(
        "Alerts (review or block) by the age of their transaction, measured from the newest "
        "stored transaction. Verdicts arrive late (analysts within hours, chargebacks within "
        "weeks): the latest label of each transaction so far, from the labels topic and this "
        "dashboard's reviews. Precision so far = fraud verdicts / alerts with a verdict; recall "
        "so far = transactions labelled fraud that were alerted / all labelled fraud. Ground "
        "truth: the transactions' own fraud flag where the source has one (the simulator's)."
    )


def _explorer(manifest: dict[str, Any] | None) -> None:
    st.subheader("Threshold explorer (what-if)")
    s = settings()
    sample = cached(q.labelled_sample, s.dashboard.sample_rows)
    if sample.empty:
        st.info("No labelled transactions yet.")
        return
    th = (manifest or {}).get("thresholds", {})
    c = st.columns(2)
    review = c[0].number_input(
        "Review threshold",
        0.0,
        1.0,
        min(float(th.get("review", 0.5)), 1.0),
        0.001,
        "%.4f",
        key="review_threshold",
    )
    block = c[1].number_input(
        "Block threshold (1 = never)",
        0.0,
        1.0,
        min(float(th.get("block", 1.0)), 1.0),
        0.001,
        "%.4f",
        key="block_threshold",
    )
    block_t = float(np.nextafter(1.0, 2.0)) if block >= 1.0 else float(block)
    costs = Costs(**s.costs.model_dump())
    rows = Labelled(
        scores=sample["score"].to_numpy(np.float64),
        labels=sample["label"].to_numpy(np.int8),
        amounts=sample["amount"].to_numpy(np.float64),
        times_ms=sample["event_time_ms"].to_numpy(np.int64),
    )
    result = what_if(rows, Thresholds(float(review), block_t), costs)
    currency = s.dashboard.currency
    _whatif_metrics(result, len(sample), currency)
    curve = sweep(rows, block_t, costs)
    left, right = st.columns(2)
    with left:
        st.altair_chart(_curve_chart(curve, float(review)), width="stretch")
    with right:
        st.altair_chart(_cost_chart(curve, float(review), currency), width="stretch")
    st.caption(
        md(
            f"Costs ({currency}): review {costs.review_cost:,.2f} each, blocked good customer "
            f"{costs.blocked_good_cost:,.2f}, missed fraud {costs.missed_fraud_share:.0%} of "
            "its amount (FRAUDSTREAM_COSTS__…)."
        )
    )


def _whatif_metrics(r: WhatIf, rows: int, currency: str) -> None:
    c = st.columns(5)
    c[0].metric("Precision", fmt_pct(r.precision, 1))
    c[1].metric("Recall", fmt_pct(r.recall, 1))
    c[2].metric("Alerts per day", "n/a" if r.alerts_per_day is None else f"{r.alerts_per_day:,.0f}")
    c[3].metric(
        f"Expected cost ({md(currency)})",
        f"{r.cost:,.0f}",
        help="on these rows, in the transactions' currency",
    )
    c[4].metric(f"Cost if all allowed ({md(currency)})", f"{r.cost_allow_all:,.0f}")
    st.caption(
        f"On the newest {rows:,} labelled transactions ({r.frauds:,} frauds): {r.alerts:,} alerts, "
        f"{r.blocked:,} blocked."
    )


def _curve_chart(curve: list[WhatIf], review: float) -> alt.LayerChart:
    data = pd.DataFrame(
        [
            {"review threshold": w.review, "metric": name, "value": value}
            for w in curve
            for name, value in (("precision", w.precision), ("recall", w.recall))
            if value is not None
        ]
    )
    lines = (
        alt.Chart(data, title="Precision and recall as the review threshold moves (block fixed)")
        .mark_line()
        .encode(
            x=alt.X(
                "review threshold:Q",
                title="review threshold (score)",
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("value:Q", title="share", axis=alt.Axis(format="%")),
            color=alt.Color(
                "metric:N",
                scale=alt.Scale(domain=["precision", "recall"], range=["#4c78a8", "#d1495b"]),
            ),
            tooltip=["review threshold:Q", "metric:N", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    rule = alt.Chart(pd.DataFrame({"x": [review]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    chart: alt.LayerChart = (lines + rule).properties(height=280)
    return chart


def _cost_chart(curve: list[WhatIf], review: float, currency: str) -> alt.LayerChart:
    data = pd.DataFrame(
        {
            "review threshold": [w.review for w in curve],
            "expected cost": [w.cost for w in curve],
            "alerts per day": [w.alerts_per_day for w in curve],
        }
    )
    cost = (
        alt.Chart(data, title="Expected cost as the review threshold moves (block fixed)")
        .mark_line(color="#d1495b")
        .encode(
            x=alt.X(
                "review threshold:Q",
                title="review threshold (score)",
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("expected cost:Q", title=f"expected cost ({currency})"),
            tooltip=[
                "review threshold:Q",
                alt.Tooltip("expected cost:Q", format=",.0f"),
                alt.Tooltip("alerts per day:Q", format=",.0f"),
            ],
        )
    )
    rule = alt.Chart(pd.DataFrame({"x": [review]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    chart: alt.LayerChart = (cost + rule).properties(height=280)
    return chart
