"""The Live page: the 30-second window, throughput, alerts per minute, lag, model version."""

from __future__ import annotations

import datetime as dt
import time

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._charts import time_tooltip, time_x
from fraudstream.dashboard._context import (
    DECISION_COLOURS,
    cached,
    fmt_ms,
    fmt_pct,
    lag,
    now_ms,
    settings,
)
from fraudstream.dashboard._stall import StallTracker
from fraudstream.dashboard._text import md, safe_text

__all__ = ["render"]

_HISTORY_MS = 5 * 60_000
_ALERT_HISTORY_MS = 30 * 60_000


def render() -> None:
    """Draw the page; the numbers refresh in a fragment every ``dashboard.refresh_s``."""
    st.title("Live")
    refresh = settings().dashboard.refresh_s
    st.caption(f"Refreshes every {refresh:g} s. Times are UTC.")
    st.fragment(run_every=refresh)(_numbers)()
    st.fragment(run_every=max(refresh, 5.0))(_lag_and_model)()
    _notification_failures()


def _numbers() -> None:
    live = cached(q.live_summary)
    if live is None:
        st.info("No window statistics yet: start `fraudstream detect` (or `fraudstream demo`).")
        return
    age_s = max(now_ms() - live.window_end_ms, 0) / 1000
    st.markdown(
        f"**Last {live.window_ms // 1000} s** up to {fmt_ms(live.window_end_ms)}"
        + (f" · data is {age_s:,.0f} s old" if age_s > 10 else "")
    )
    currency = md(settings().dashboard.currency)
    c = st.columns(6)
    c[0].metric("Throughput", f"{live.tx_per_s:,.0f} tx/s", help="transactions in the window / s")
    per_min = live.alerts * 60_000 / live.window_ms
    rate = live.frauds / live.transactions if live.transactions else None
    amount_share = live.fraud_amount / live.amount if live.amount > 0 else None
    c[1].metric("Alerts", f"{per_min:,.1f} /min", help="review + block, per minute")
    c[2].metric(
        "Fraud share of transactions (count)",
        fmt_pct(rate),
        help="labelled frauds / transactions in the window (a share of the count)",
    )
    c[3].metric(
        "Fraud share of amount",
        fmt_pct(amount_share),
        help="amount of labelled frauds / amount of all transactions in the window (the "
        "console's 'fraud %' of `fraudstream demo`)",
    )
    c[4].metric("Transactions (30 s)", f"{live.transactions:,}")
    c[5].metric(f"Fraud amount (30 s, {currency})", f"{live.fraud_amount:,.0f}")
    series = cached(q.window_series, live.window_end_ms - _HISTORY_MS)
    left, right = st.columns(2)
    with left:
        st.altair_chart(_throughput_chart(series), width="stretch")
    with right:
        alerts = cached(q.alerts_by_minute, live.window_end_ms - _ALERT_HISTORY_MS)
        st.altair_chart(_alerts_chart(alerts), width="stretch")
    st.altair_chart(_fraud_rate_chart(series), width="stretch")


def _times(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms, unit="ms", utc=True)


def _throughput_chart(series: pd.DataFrame) -> alt.Chart:
    data = pd.DataFrame(
        {
            "time": _times(series["window_end_ms"]),
            "tx/s": series["transactions"] * 1000.0 / series["window_ms"],
        }
    )
    chart: alt.Chart = (
        alt.Chart(data, title="Throughput, 30 s sliding window (last 5 min)")
        .mark_line(color="#4c78a8")
        .encode(
            x=time_x(),
            y=alt.Y("tx/s:Q", title="transactions per second"),
            tooltip=[time_tooltip(), alt.Tooltip("tx/s:Q", format=",.0f")],
        )
        .properties(height=260)
    )
    return chart


def _alerts_chart(alerts: pd.DataFrame) -> alt.Chart:
    data = alerts.assign(time=_times(alerts["minute_ms"]))
    chart: alt.Chart = (
        alt.Chart(data, title="Alerts per minute (last 30 min)")
        .mark_bar()
        .encode(
            x=time_x(title="minute (UTC)"),
            y=alt.Y("alerts:Q", title="alerts per minute", stack=True),
            color=alt.Color(
                "decision:N",
                scale=alt.Scale(
                    domain=["review", "block"],
                    range=[DECISION_COLOURS["review"], DECISION_COLOURS["block"]],
                ),
                title="decision",
            ),
            tooltip=[time_tooltip(fmt="%Y-%m-%d %H:%M"), "decision:N", "alerts:Q"],
        )
        .properties(height=260)
    )
    return chart


def _fraud_rate_chart(series: pd.DataFrame) -> alt.Chart:
    tx = series["transactions"].astype(float)
    data = pd.DataFrame(
        {
            "time": _times(series["window_end_ms"]),
            "fraud share": (series["frauds"] / tx.where(tx > 0)).fillna(0.0),
        }
    )
    chart: alt.Chart = (
        alt.Chart(
            data,
            title="Fraud share of transactions (count), 30 s sliding window: labelled frauds / "
            "transactions",
        )
        .mark_area(color="#d1495b", opacity=0.5, line=True)
        .encode(
            x=time_x(),
            y=alt.Y("fraud share:Q", title="fraud share (count)", axis=alt.Axis(format="%")),
            tooltip=[time_tooltip(), alt.Tooltip("fraud share:Q", format=".3%")],
        )
        .properties(height=200)
    )
    return chart


def _lag_and_model() -> None:
    left, right = st.columns(2)
    report = lag()
    tracker = st.session_state.setdefault(
        "stall_tracker", StallTracker(settings().detect.stall_after_s)
    )
    stalled_s = tracker.observe(report, time.monotonic())
    if stalled_s and report.total is not None:
        st.error(
            f"Detector stalled: {report.total:,} records wait on {md(report.topic)} and group "
            f"{md(report.group)} has committed nothing for {stalled_s:,.0f} s. Check the "
            "detector's log (it says 'detector stalled') and docs/notes/stall.md."
        )
    with left:
        if report.total is None:
            st.metric("Consumer lag", "unknown")
            st.caption(f"⚠ {md(report.error)}")
        else:
            st.metric(
                "Consumer lag",
                f"{report.total:,} messages",
                help=f"group {report.group} on {report.topic}: high watermark − committed offset",
            )
            parts = ", ".join(f"p{p}: {n:,}" for p, n in sorted(report.partitions.items()))
            st.caption(f"group {md(report.group)} · {parts}")
    with right:
        version = cached(q.latest_model_version)
        if version is None:
            st.metric("Model version", "none yet")
        else:
            st.metric("Model version", md(version[0]))
            seen = dt.datetime.fromtimestamp(version[1] / 1000, tz=dt.UTC)
            st.caption(f"in use since {seen:%Y-%m-%d %H:%M:%S} UTC")


def _notification_failures() -> None:
    count, failures = cached(q.notification_failures, 50)
    if count == 0:
        st.caption("Notifications: no failures recorded.")
        return
    st.error(f"{count:,} alert notification(s) failed for good (webhook / e-mail).")
    with st.expander("Failed notifications (newest 50)"):
        shown = failures.assign(
            failed_at=failures["failed_at_ms"].map(fmt_ms),
            alert_id=failures["alert_id"].map(safe_text),
            error=failures["error"].map(safe_text),
        ).drop(columns=["failed_at_ms"])
        st.dataframe(shown, hide_index=True, width="stretch")
