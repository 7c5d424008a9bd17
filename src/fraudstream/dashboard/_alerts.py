"""The Alerts page: the analysts' review queue; a verdict is stored, then published as a label."""

from __future__ import annotations

import getpass
import math

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._context import (
    DECISION_COLOURS,
    cached,
    database,
    fmt_ms,
    kafka_client,
    now_ms,
    settings,
)
from fraudstream.dashboard._kafka import publish_labels
from fraudstream.errors import FraudstreamError, KafkaError

__all__ = ["render"]

_PAGE_SIZE = 25
_PENDING = "pending_labels"
_MESSAGES = "verdict_messages"
_REPUBLISH_MESSAGES = "republish_messages"
_STATUS_NAMES = {
    "open": "open",
    "confirmed_fraud": "confirmed fraud",
    "false_positive": "false positive",
}


def render() -> None:
    st.title("Alerts")
    counts = cached(q.alert_counts)
    c = st.columns(3)
    c[0].metric("Open alerts", f"{counts['open']:,}")
    c[1].metric("Confirmed fraud", f"{counts['confirmed_fraud']:,}")
    c[2].metric("False positives", f"{counts['false_positive']:,}")
    _pending_labels()
    status, decision, order = _filters()
    total = counts.get(status, 0)
    pages = max(math.ceil(total / _PAGE_SIZE), 1)
    page = int(st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="queue_page"))
    alerts = cached(q.alert_queue, status, decision, order, _PAGE_SIZE, (page - 1) * _PAGE_SIZE)
    if not alerts:
        st.info("No alerts match.")
        return
    st.dataframe(_queue_frame(alerts), hide_index=True, width="stretch")
    chosen = st.selectbox(
        "Alert to review",
        [a.alert_id for a in alerts],
        format_func=lambda aid: _label(next(a for a in alerts if a.alert_id == aid)),
        key="chosen_alert",
    )
    alert = next(a for a in alerts if a.alert_id == chosen)
    _detail(alert)


def _filters() -> tuple[str, str | None, str]:
    c = st.columns(3)
    status = c[0].selectbox(
        "Status", list(_STATUS_NAMES), format_func=_STATUS_NAMES.__getitem__, key="status"
    )
    decision = c[1].selectbox("Decision", ["any", "block", "review"], key="decision")
    orders = {"score": "highest score", "newest": "newest", "oldest": "oldest"}
    order = c[2].selectbox("Order", list(orders), format_func=orders.__getitem__, key="order")
    return str(status), None if decision == "any" else str(decision), str(order)


def _label(a: q.AlertRow) -> str:
    return f"{a.score:.3f} · {a.decision} · {a.account} → {a.counterparty} · {a.amount:,.2f}"


def _queue_frame(alerts: list[q.AlertRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": [a.score for a in alerts],
            "decision": [a.decision for a in alerts],
            "amount": [a.amount for a in alerts],
            "account": [a.account for a in alerts],
            "counterparty": [a.counterparty for a in alerts],
            "top reason": [a.reasons[0]["feature"] if a.reasons else "" for a in alerts],
            "created (UTC)": [fmt_ms(a.created_at_ms) for a in alerts],
            "status": [_STATUS_NAMES.get(a.status, a.status) for a in alerts],
            "alert_id": [a.alert_id for a in alerts],
        }
    )


def _detail(alert: q.AlertRow) -> None:
    st.subheader(f"Alert {alert.alert_id}")
    c = st.columns(4)
    c[0].metric("Score", f"{alert.score:.3f}")
    c[1].metric("Decision", alert.decision)
    c[2].metric("Amount", f"{alert.amount:,.2f}")
    c[3].metric("Status", _STATUS_NAMES.get(alert.status, alert.status))
    st.caption(
        f"{alert.account} → {alert.counterparty} · event {fmt_ms(alert.event_time_ms)} UTC · "
        f"model {alert.model_version}"
        + (
            f" · reviewed by {alert.analyst} at {fmt_ms(alert.reviewed_at_ms)}"
            if alert.analyst
            else ""
        )
    )
    left, right = st.columns(2)
    with left:
        st.altair_chart(_reasons_chart(alert), width="stretch")
    with right:
        history = cached(q.account_history, alert.account, 20)
        st.markdown(f"**Account {alert.account}: newest {len(history)} transactions**")
        shown = history.assign(time=history["event_time_ms"].map(fmt_ms)).drop(
            columns=["event_time_ms"]
        )
        st.dataframe(shown, hide_index=True, width="stretch", height=300)
    _verdict(alert)


def _reasons_chart(alert: q.AlertRow) -> alt.Chart:
    data = pd.DataFrame(alert.reasons or [], columns=["feature", "value", "contribution"])
    chart: alt.Chart = (
        alt.Chart(data, title="Reason codes (contribution to the score, log-odds)")
        .mark_bar(color=DECISION_COLOURS["block"])
        .encode(
            x=alt.X("contribution:Q", title="contribution (log-odds)"),
            y=alt.Y("feature:N", sort="-x", title=None),
            tooltip=["feature:N", alt.Tooltip("value:Q", format=",.4g"), "contribution:Q"],
        )
        .properties(height=200)
    )
    return chart


def _verdict(alert: q.AlertRow) -> None:
    st.text_input("Analyst", value=_default_analyst(), key="analyst")
    c = st.columns(2)
    c[0].button(
        "Confirm fraud",
        type="primary",
        key="confirm",
        width="stretch",
        on_click=_on_verdict,
        args=(alert.alert_id, "confirmed_fraud"),
    )
    c[1].button(
        "False positive",
        key="dismiss",
        width="stretch",
        on_click=_on_verdict,
        args=(alert.alert_id, "false_positive"),
    )
    for level, text in st.session_state.pop(_MESSAGES, []):
        (st.success if level == "ok" else st.error)(text)


def _say(level: str, text: str, where: str = _MESSAGES) -> None:
    st.session_state.setdefault(where, []).append((level, text))


def _on_verdict(alert_id: str, status: str) -> None:
    """Button callback (runs before the page redraws): store the verdict, then publish it."""
    analyst = str(st.session_state.get("analyst", "")).strip()
    if not analyst:
        _say("error", "Enter the analyst's name first.")
        return
    try:
        q.mark_alert(database(), alert_id, status, analyst, now_ms())
    except FraudstreamError as exc:
        _say("error", f"Verdict not stored: {exc}")
        return
    st.cache_data.clear()
    _publish([alert_id])


def _default_analyst() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _publish(alert_ids: list[str], where: str = _MESSAGES) -> None:
    """Publish the labels of these stored verdicts; keep the ones that failed as pending."""
    pending: list[str] = st.session_state.setdefault(_PENDING, [])
    db = database()
    alerts = [a for a in (q.get_alert(db, aid) for aid in alert_ids) if a is not None]
    s = settings()
    try:
        publish_labels(
            kafka_client(), s.topics.labels, alerts, partitions=s.kafka.partitions, timeout_s=5.0
        )
    except KafkaError as exc:
        pending.extend(aid for aid in alert_ids if aid not in pending)
        _say("error", f"Verdict stored, label NOT published: {exc}", where)
        return
    st.session_state[_PENDING] = [aid for aid in pending if aid not in alert_ids]
    for a in alerts:
        _say(
            "ok",
            f"Stored: {a.alert_id} is {_STATUS_NAMES[a.status]} (by {a.analyst}); "
            f"label published to {s.topics.labels}.",
            where,
        )


def _pending_labels() -> None:
    pending: list[str] = st.session_state.get(_PENDING, [])
    with st.expander(
        f"Labels waiting to be published: {len(pending)}" if pending else "Publish labels again",
        expanded=bool(pending),
    ):
        if pending:
            st.warning(
                f"{len(pending)} verdict(s) are stored but their labels are not on the topic yet."
            )
            st.button(
                "Publish waiting labels",
                key="republish_pending",
                on_click=lambda: _publish(
                    list(st.session_state.get(_PENDING, [])), _REPUBLISH_MESSAGES
                ),
            )
        st.number_input("Verdicts of the last … hours", 1, 24 * 30, 24, key="hours")
        st.button("Publish all these verdicts again", key="republish_all", on_click=_republish)
        for level, text in st.session_state.pop(_REPUBLISH_MESSAGES, []):
            (st.success if level == "ok" else st.error)(text)


def _republish() -> None:
    hours = int(st.session_state.get("hours", 24))
    verdicts = q.verdicts_since(database(), now_ms() - hours * 3_600_000)
    if verdicts:
        _publish([a.alert_id for a in verdicts], _REPUBLISH_MESSAGES)
    else:
        _say("error", "No verdicts in that period.", _REPUBLISH_MESSAGES)
