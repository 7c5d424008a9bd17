"""The Trends page: fraud rate and alert volume over time, scores, riskiest entities, decisions."""

from __future__ import annotations

from typing import Final

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._charts import time_tooltip, time_x
from fraudstream.dashboard._context import (
    DECISION_COLOURS,
    LABEL_COLOURS,
    cached,
    fmt_pct,
    settings,
)
from fraudstream.dashboard._text import md, safe_text

__all__ = ["RANGES", "render"]

_MIN: Final = 60_000
#: Time ranges offered, with the bucket each is drawn in.
RANGES: Final = {
    "last hour": (60 * _MIN, _MIN),
    "last 6 hours": (360 * _MIN, 5 * _MIN),
    "last 24 hours": (1440 * _MIN, 15 * _MIN),
    "last 7 days": (7 * 1440 * _MIN, 120 * _MIN),
}


def render() -> None:
    st.title("Trends")
    live = cached(q.live_summary)
    if live is None:
        st.info("No data yet: start `fraudstream detect` (or `fraudstream demo`).")
        return
    choice = st.radio("Range", list(RANGES), index=2, horizontal=True, key="range")
    span_ms, bucket_ms = RANGES[str(choice)]
    since = live.window_end_ms - span_ms
    st.caption(
        f"Up to the newest data; buckets of {bucket_ms // _MIN} min. Rates come from the "
        "per-second 30 s sliding windows, so each bucket averages its windows."
    )
    trend = cached(q.trend_series, since, bucket_ms)
    _totals(trend, cached(q.alerts_since, since))
    left, right = st.columns(2)
    with left:
        st.altair_chart(
            _line(
                trend,
                "fraud_rate",
                "Fraud share of transactions (count)",
                "fraud share (count)",
                "%",
            ),
            width="stretch",
        )
    with right:
        st.altair_chart(
            _line(trend, "alerts_per_min", "Alert volume", "alerts per minute", ",.1f"),
            width="stretch",
        )
    st.altair_chart(
        _line(trend, "tx_per_s", "Throughput", "transactions per second", ",.0f"), width="stretch"
    )
    _transactions_section()
    _riskiest(since)


def _totals(trend: pd.DataFrame, alerts: dict[str, int]) -> None:
    c = st.columns(4)
    frauds, tx = float(trend["frauds"].sum()), float(trend["transactions"].sum())
    c[0].metric("Alerts in range", f"{sum(alerts.values()):,}")
    c[1].metric("Blocked in range", f"{alerts.get('block', 0):,}")
    c[2].metric(
        "Fraud share of transactions (count)",
        fmt_pct(frauds / tx if tx else None),
        help="labelled frauds / transactions over the range's windows (a share of the count, "
        "not of the amount)",
    )
    mean = float(trend["tx_per_s"].mean()) if len(trend) else 0.0
    c[3].metric("Mean throughput", f"{mean:,.0f} tx/s")


def _line(frame: pd.DataFrame, column: str, title: str, axis: str, fmt: str) -> alt.Chart:
    data = pd.DataFrame(
        {"time": pd.to_datetime(frame["bucket_ms"], unit="ms", utc=True), axis: frame[column]}
    )
    colour = "#d1495b" if "fraud" in column else "#4c78a8"
    chart: alt.Chart = (
        alt.Chart(data, title=f"{title} over time")
        .mark_line(point=len(data) < 40, color=colour)
        .encode(
            x=time_x(),
            y=alt.Y(f"{axis}:Q", title=axis, axis=alt.Axis(format=fmt)),
            tooltip=[time_tooltip(fmt="%Y-%m-%d %H:%M"), alt.Tooltip(f"{axis}:Q", format=fmt)],
        )
        .properties(height=240)
    )
    return chart


def _transactions_section() -> None:
    sample = settings().dashboard.sample_rows
    start = cached(q.sample_start_ms, sample)
    st.subheader("Scores and decisions")
    st.caption(f"The newest {sample:,} transactions.")
    left, right = st.columns(2)
    with left:
        hist = cached(q.score_histogram, start, 50)
        st.altair_chart(_histogram(hist), width="stretch")
    with right:
        kinds = cached(q.decisions_by_kind, start)
        st.altair_chart(_decisions(kinds), width="stretch")


def _histogram(hist: pd.DataFrame) -> alt.Chart:
    domain = [k for k in LABEL_COLOURS if k in set(hist["label"])] or list(LABEL_COLOURS)
    chart: alt.Chart = (
        alt.Chart(hist, title="Score distribution by label (log scale)")
        .mark_bar(opacity=0.75)
        .encode(
            x=alt.X("score_from:Q", bin="binned", title="model score (fraud probability)"),
            x2="score_to:Q",
            y=alt.Y(
                "transactions:Q", title="transactions", scale=alt.Scale(type="symlog"), stack=None
            ),
            color=alt.Color(
                "label:N",
                scale=alt.Scale(domain=domain, range=[LABEL_COLOURS[k] for k in domain]),
                title="label",
            ),
            tooltip=["score_from:Q", "label:N", alt.Tooltip("transactions:Q", format=",")],
        )
        .properties(height=280)
    )
    return chart


def _decisions(kinds: pd.DataFrame) -> alt.Chart:
    order = ["allow", "review", "block"]
    chart: alt.Chart = (
        alt.Chart(kinds, title="Decisions by transaction type (share of the type)")
        .mark_bar()
        .encode(
            y=alt.Y("kind:N", title="transaction type"),
            x=alt.X("transactions:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
            color=alt.Color(
                "decision:N",
                scale=alt.Scale(domain=order, range=[DECISION_COLOURS[d] for d in order]),
                title="decision",
            ),
            order=alt.Order("decision:N", sort="ascending"),
            tooltip=["kind:N", "decision:N", alt.Tooltip("transactions:Q", format=",")],
        )
        .properties(height=280)
    )
    return chart


def _riskiest(since: int) -> None:
    st.subheader("Riskiest entities")
    top = int(st.selectbox("Show", [10, 25, 50], key="top"))
    currency = settings().dashboard.currency
    left, right = st.columns(2)
    for column, entity, title in (
        (left, "counterparty", "Destinations (counterparties / merchants)"),
        (right, "account", "Accounts (senders)"),
    ):
        with column:
            st.markdown(f"**{title}** by alerts in the range")
            frame = cached(q.riskiest, entity, since, top)
            frame = frame.assign(**{entity: frame[entity].map(safe_text)})
            st.dataframe(
                frame,
                hide_index=True,
                width="stretch",
                column_config={
                    "alerted_amount": st.column_config.NumberColumn(
                        f"alerted amount ({md(currency)})", format="%.0f"
                    ),
                    "max_score": st.column_config.NumberColumn("max score", format="%.3f"),
                    "labelled_frauds": st.column_config.NumberColumn("labelled frauds"),
                },
            )
