"""The Alerts page: the analysts' review queue; a verdict is stored, then published as a label.

The queue can be searched by account or transaction id and exported to CSV with the same
filters. Only an analyst or admin sees the verdict buttons, and the verdict is written through
``_verdicts`` (which checks the role in the store again) signed by the signed-in user.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._access import AccessDenied, User, can
from fraudstream.dashboard._context import (
    DECISION_COLOURS,
    cached,
    database,
    fmt_ms,
    kafka_client,
    now_ms,
    settings,
)
from fraudstream.dashboard._export import EXPORT_MAX_ROWS, STATUS_NAMES, queue_csv, queue_table
from fraudstream.dashboard._session import FIRST_ADMIN, current_user
from fraudstream.dashboard._text import describe_reason, md, safe_text
from fraudstream.dashboard._verdicts import publish_verdicts, store_verdict
from fraudstream.errors import FraudstreamError, KafkaError
from fraudstream.features import feature_label

__all__ = ["render"]

_PAGE_SIZE = 25
_PENDING = "pending_labels"
_MESSAGES = "verdict_messages"
_REPUBLISH_MESSAGES = "republish_messages"
_ANY = "any"


def render() -> None:
    st.title("Alerts")
    counts = cached(q.alert_counts)
    c = st.columns(3)
    c[0].metric("Open alerts", f"{counts['open']:,}")
    c[1].metric("Confirmed fraud", f"{counts['confirmed_fraud']:,}")
    c[2].metric("False positives", f"{counts['false_positive']:,}")
    user = current_user()
    if can(user, "analyst"):
        _pending_labels()
    status, decision, order, search = _filters()
    total = cached(q.count_alerts, status, decision, search)
    pages = max(math.ceil(total / _PAGE_SIZE), 1)
    page = int(st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="queue_page"))
    offset = (page - 1) * _PAGE_SIZE
    alerts = cached(q.alert_queue, status, decision, order, _PAGE_SIZE, offset, search)
    if not alerts:
        st.info("No alerts match.")
        return
    currency = settings().dashboard.currency
    st.dataframe(queue_table(alerts, currency), hide_index=True, width="stretch")
    _export_button(status, decision, order, search, total)
    chosen = st.selectbox(
        "Alert to review",
        [a.alert_id for a in alerts],
        format_func=lambda aid: _label(next(a for a in alerts if a.alert_id == aid)),
        key="chosen_alert",
    )
    _detail(next(a for a in alerts if a.alert_id == chosen), user)


def _filters() -> tuple[str | None, str | None, str, str | None]:
    c = st.columns([1, 1, 1, 2])
    statuses = {**STATUS_NAMES, _ANY: "any status"}
    status = c[0].selectbox(
        "Status", list(statuses), format_func=statuses.__getitem__, key="status"
    )
    decision = c[1].selectbox("Decision", [_ANY, "block", "review"], key="decision")
    orders = {"score": "highest score", "newest": "newest", "oldest": "oldest"}
    order = c[2].selectbox("Order", list(orders), format_func=orders.__getitem__, key="order")
    search = c[3].text_input(
        "Search: account or transaction id",
        key="search",
        placeholder="an exact id, e.g. C12345678",
        help="Alerts of this account (sender or recipient) or of this transaction; exact match.",
    )
    return (
        None if status == _ANY else str(status),
        None if decision == _ANY else str(decision),
        str(order),
        str(search).strip() or None,
    )


def _export_button(
    status: str | None, decision: str | None, order: str, search: str | None, total: int
) -> None:
    """Every alert the filters keep (not only this page) as CSV, built when clicked."""
    db, currency = database(), settings().dashboard.currency

    def build() -> str:
        return queue_csv(
            db, status=status, decision=decision, order=order, search=search, currency=currency
        )

    st.download_button(
        f"Export these {min(total, EXPORT_MAX_ROWS):,} alerts (CSV)",
        data=build,
        file_name="fraudstream-alerts.csv",
        mime="text/csv",
        on_click="ignore",
        key="export_csv",
        help=f"Every alert the filters above keep, in this order (at most {EXPORT_MAX_ROWS:,}).",
    )


def _label(a: q.AlertRow) -> str:
    return safe_text(
        f"{a.score:.3f} · {a.decision} · {a.account} → {a.counterparty} · {a.amount:,.2f}"
    )


def _detail(alert: q.AlertRow, user: User | None) -> None:
    currency = settings().dashboard.currency
    st.subheader(f"Alert {md(alert.alert_id)}")
    c = st.columns(4)
    c[0].metric("Score", f"{alert.score:.3f}")
    c[1].metric("Decision", md(alert.decision))
    c[2].metric(f"Amount ({md(currency)})", f"{alert.amount:,.2f}")
    c[3].metric("Status", md(STATUS_NAMES.get(alert.status, alert.status)))
    reviewed = (
        f" · reviewed by {alert.analyst} at {fmt_ms(alert.reviewed_at_ms)} UTC"
        if alert.analyst
        else ""
    )
    st.text(
        safe_text(
            f"{alert.account} → {alert.counterparty} · event {fmt_ms(alert.event_time_ms)} UTC · "
            f"model {alert.model_version}{reviewed}"
        )
    )
    left, right = st.columns(2)
    with left:
        st.markdown("**Reason codes**: the feature's value and how it moved the score")
        for reason in alert.reasons:
            st.text(describe_reason(reason, currency))
        if not alert.reasons:
            st.text("No reason codes stored for this alert.")
        st.markdown("**Rules fired**: the fraud team's rules, in decision order")
        for line in rules_fired_lines(alert):
            st.text(line)
        st.altair_chart(_reasons_chart(alert, currency), width="stretch")
    with right:
        history = cached(q.account_history, alert.account, 20)
        st.markdown(f"**The account's newest {len(history)} transactions**")
        shown = history.assign(
            time=history["event_time_ms"].map(fmt_ms),
            tx_id=history["tx_id"].map(safe_text),
            counterparty=history["counterparty"].map(safe_text),
        ).drop(columns=["event_time_ms"])
        shown = shown.rename(columns={"amount": f"amount ({currency})", "time": "time (UTC)"})
        st.dataframe(shown, hide_index=True, width="stretch", height=300)
    _verdict(alert, user)


def rules_fired_lines(alert: q.AlertRow) -> list[str]:
    """The rules that fired on ``alert`` (live ones first, which acted; shadow ones apart)."""
    if alert.rule_set_version is None:
        return ["No rule set was in force: the model's thresholds decided."]
    lines = [
        f"Live: {', '.join(alert.rules_fired)}"
        if alert.rules_fired
        else "Live: none (the model's thresholds decided)",
        f"Shadow (recorded, not acting): {', '.join(alert.rules_shadow) or 'none'}",
        f"Rule set version {alert.rule_set_version}",
    ]
    return [safe_text(line) for line in lines]


def _reasons_chart(alert: q.AlertRow, currency: str) -> alt.Chart:
    reasons = alert.reasons or []
    data = pd.DataFrame(
        {
            "reason": [feature_label(str(r.get("feature", ""))).text for r in reasons],
            "contribution": [float(r.get("contribution", 0.0)) for r in reasons],
            "explained": [describe_reason(r, currency) for r in reasons],
        }
    )
    chart: alt.Chart = (
        alt.Chart(data, title="Contribution to the score (log-odds)")
        .mark_bar(color=DECISION_COLOURS["block"])
        .encode(
            x=alt.X("contribution:Q", title="contribution (log-odds)"),
            y=alt.Y("reason:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            tooltip=[alt.Tooltip("explained:N", title="reason")],
        )
        .properties(height=160)
    )
    return chart


def _verdict(alert: q.AlertRow, user: User | None) -> None:
    for level, text in st.session_state.pop(_MESSAGES, []):
        (st.success if level == "ok" else st.error)(text)
    if user is None:
        st.info(f"Read-only: no dashboard account exists yet. Create one with `{FIRST_ADMIN}`.")
        return
    if not can(user, "analyst"):
        st.info(f"Signed in as {md(user.name)} ({user.role}): verdicts need the analyst role.")
        return
    st.caption(f"Acting as **{md(user.name)}** ({user.role})")
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


def _say(level: str, text: str, where: str = _MESSAGES) -> None:
    st.session_state.setdefault(where, []).append((level, text))


def _on_verdict(alert_id: str, status: str) -> None:
    """Button callback (runs before the page redraws): store the verdict, then publish it."""
    try:
        store_verdict(database(), current_user(), alert_id, status, now_ms())
    except FraudstreamError as exc:  # AccessDenied too: the role is checked again
        _say("error", f"Verdict not stored: {md(exc)}")
        return
    st.cache_data.clear()
    _publish([alert_id])


def _publish(alert_ids: list[str], where: str = _MESSAGES) -> None:
    """Publish the labels of these stored verdicts; keep the ones that failed as pending."""
    pending: list[str] = st.session_state.setdefault(_PENDING, [])
    s = settings()
    try:
        alerts = publish_verdicts(
            database(),
            current_user(),
            kafka_client(),
            s.topics.labels,
            alert_ids,
            partitions=s.kafka.partitions,
            timeout_s=5.0,
        )
    except AccessDenied as exc:
        _say("error", f"Labels not published: {md(exc)}", where)
        return
    except KafkaError as exc:
        pending.extend(aid for aid in alert_ids if aid not in pending)
        _say("error", f"Verdict stored, label NOT published: {md(exc)}", where)
        return
    st.session_state[_PENDING] = [aid for aid in pending if aid not in alert_ids]
    for a in alerts:
        _say(
            "ok",
            f"Stored: {md(a.alert_id)} is {STATUS_NAMES[a.status]} (by {md(a.analyst)}); "
            f"label published to {md(s.topics.labels)}.",
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
