"""The Rules & lists page's Backtest and Lists tabs, and the statistics range of its table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard._context import database, fmt_ms, now_ms, settings
from fraudstream.dashboard._db import Database
from fraudstream.dashboard._rules import (
    EXPIRIES,
    add_list_entries,
    create_list,
    entries_table,
    expires_at,
    lists_table,
    remove_list_entries,
    split_values,
)
from fraudstream.dashboard._rules_backtest import (
    History,
    backtest_table,
    columns_read,
    default_range,
    history,
    stored_span,
)
from fraudstream.dashboard._rules_ui import attempt, show_outcome, show_refusal
from fraudstream.dashboard._session import current_user
from fraudstream.dashboard._text import md, safe_text
from fraudstream.errors import FraudstreamError
from fraudstream.model._costs import Costs
from fraudstream.rules import ACTIONS, Backtest, Rule, RuleError, Schema, backtest
from fraudstream.sinks import RuleSetVersion, RuleStore

__all__ = ["backtest_tab", "lists_tab", "send_to_backtest", "stats_since"]

_DAY_MS: Final = 86_400_000
_DATES: Final = "between dates"
_RANGES: Final[dict[str, int | None]] = {
    "last 24 hours": 1,
    "last 7 days": 7,
    "last 30 days": 30,
    "everything stored": None,
    _DATES: None,
}
_NEW: Final = "(a new rule)"
_CANDIDATE: Final = "a rule not saved yet"
_AUTORUN: Final = "rules_backtest_autorun"
_RESULT: Final = "rules_backtest_result"


def _url() -> str:
    return settings().store_url()


@st.cache_data(ttl=5.0, show_spinner=False)
def _span(_db: Database, url: str) -> tuple[int, int] | None:
    return stored_span(_db)


@st.cache_data(ttl=5.0, show_spinner=False)
def _count_since(_db: Database, url: str, since_ms: int) -> int:
    row = _db.one(
        "SELECT count(*) FROM transactions_enriched WHERE event_time_ms >= ?", (since_ms,)
    )
    return int(row[0]) if row else 0


def stats_since(days: int | None) -> tuple[int, int]:
    """The start of the newest ``days`` days of stored transactions (0: all of them) and how
    many transactions that range holds."""
    db = database()
    span = _span(db, _url())
    if span is None:
        return 0, 0
    since = 0 if days is None else span[1] - days * _DAY_MS
    return since, _count_since(db, _url(), since)


@st.cache_data(ttl=60.0, show_spinner=False, max_entries=4)
def _history(
    _db: Database, url: str, columns: tuple[str, ...], start_ms: int, end_ms: int, limit: int
) -> History:
    return history(_db, columns, start_ms, end_ms, limit=limit)


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


def _utc_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


def _range_input(span: tuple[int, int]) -> tuple[int, int]:
    """``[start, end)`` chosen on the page: a span up to the newest stored transaction, or days."""
    oldest, newest = span
    label = str(st.radio("Range", list(_RANGES), index=1, horizontal=True, key="backtest_range"))
    if label != _DATES:
        days = _RANGES[label]
        return (oldest, newest + 1) if days is None else default_range(newest, days)
    first, last = _utc_day(oldest), _utc_day(newest)
    picked = st.date_input(
        "Days (UTC)",
        value=(max(first, last - dt.timedelta(days=7)), last),
        min_value=first,
        max_value=last,
        key="backtest_days",
    )
    chosen = list(picked) if isinstance(picked, tuple | list) else [picked]
    start = chosen[0] or first
    end = chosen[-1] or start
    return _day_ms(start), _day_ms(end + dt.timedelta(days=1))


def _candidate_keys(start: str) -> tuple[str, str, str]:
    """The widget keys of the rule being written, started from rule ``start`` (or new)."""
    key = f"backtest_{start}"
    return f"{key}_id", f"{key}_action", f"{key}_condition"


def send_to_backtest(start: str | None, rule_id: str, action: str, condition: str) -> None:
    """From a form's callback: open the Backtest tab on this rule as written (``start``: the
    stored rule it changes, ``None`` for a new one) and run it."""
    s = st.session_state
    s["backtest_what"] = _CANDIDATE
    s["backtest_from"] = start or _NEW
    keys = _candidate_keys(start or _NEW)
    for key, value in zip(keys, (rule_id, action, condition), strict=True):
        s[key] = value
    s["rules_tab"] = "Backtest"
    s[_AUTORUN] = True


def _rules_input(current: RuleSetVersion) -> tuple[str, list[Rule]]:
    """What to backtest: every rule of the version in force, or a rule being written beside
    the others (it replaces the rule of the same id). A description and the rules."""
    every = f"every rule of version {current.version}, whatever its status"
    choice = st.radio("Rules", [every, _CANDIDATE], horizontal=True, key="backtest_what")
    if choice != _CANDIDATE:
        return every, list(current.rules)
    ids = [r.id for r in current.rules]
    start = str(st.selectbox("Start from", [_NEW, *ids], key="backtest_from"))
    base = next((r for r in current.rules if r.id == start), None)
    keys = _candidate_keys(start)
    defaults = (base.id, base.action, base.expression) if base else ("candidate", "review", "")
    for key, value in zip(keys, defaults, strict=True):
        st.session_state.setdefault(key, value)
    c = st.columns([2, 1])
    rule_id = c[0].text_input("Id", key=keys[0])
    action = c[1].selectbox("Action", ACTIONS, key=keys[1])
    condition = st.text_area("Condition", key=keys[2])
    rule = Rule(str(rule_id).strip(), str(condition), action)
    others = [r for r in current.rules if r.id != rule.id]
    what = f"rule {rule.id} as written (not saved), beside the {len(others)} other(s)"
    return what, [rule, *others]


def backtest_tab(store: RuleStore, current: RuleSetVersion) -> None:
    """Backtest the rule set, or a rule being written, on the store's recent history."""
    db = database()
    span = _span(db, _url())
    if span is None:
        st.info("No stored transactions yet: nothing to backtest on.")
        return
    start, end = _range_input(span)
    try:
        what, rules = _rules_input(current)
    except RuleError as exc:
        show_refusal(exc)
        return
    clicked = st.button("Run backtest", type="primary", key="backtest_run", disabled=not rules)
    if clicked or st.session_state.pop(_AUTORUN, False):
        _run(store, current.mode, what, rules, (start, end))
    last = st.session_state.get(_RESULT)
    if last is not None and last[0].mode == current.mode:
        _show_backtest(*last)


def _run(store: RuleStore, mode: str, what: str, rules: list[Rule], span: tuple[int, int]) -> None:
    """Backtest ``rules`` on the range; the result is kept for this session, or the refusal
    (a rule's fault with its position, a feature the store does not hold) shown."""
    schema = Schema.for_mode(mode)
    limit = settings().dashboard.sample_rows
    try:
        columns = columns_read(rules, schema)
        found = _history(database(), _url(), columns, *span, limit)
        if found.frame.height == 0:
            st.info("No stored transaction in this range.")
            return
        result = backtest(
            found.frame,
            rules,
            schema,
            lists=store.lists_snapshot().lists,
            costs=Costs(**settings().costs.model_dump()),
        )
    except RuleError as exc:
        show_refusal(exc)
        return
    except FraudstreamError as exc:  # SchemaError: a feature no stored model computes
        st.error(f"Backtest not run: {md(exc)}")
        return
    shown = _Shown(mode, what, found.start_ms, found.end_ms, found.truncated)
    st.session_state[_RESULT] = (shown, result)


@dataclass(frozen=True, slots=True)
class _Shown:
    """What the last backtest of this session was run on (kept to show it again)."""

    mode: str
    what: str
    start_ms: int
    end_ms: int
    truncated: bool


def _show_backtest(shown: _Shown, result: Backtest) -> None:
    currency = settings().dashboard.currency
    st.markdown(
        f"**Backtest of {md(shown.what)}** on {result.rows:,} stored transactions from "
        f"{fmt_ms(shown.start_ms)} to {fmt_ms(shown.end_ms - 1)} UTC"
        + (" (the newest of the range only)" if shown.truncated else "")
    )
    c = st.columns(5)
    c[0].metric("Transactions", f"{result.rows:,}")
    c[1].metric("Labelled", f"{result.labelled_rows:,}")
    c[2].metric("Frauds", f"{result.frauds:,}")
    c[3].metric(f"Model's cost ({currency})", f"{result.model_cost:,.2f}")
    c[4].metric(f"Cost, every rule acting ({currency})", f"{result.all_rules_cost:,.2f}")
    st.table(backtest_table(result, currency), hide_index=True)
    st.caption(
        "Per rule, the model's decisions with that one rule acting. Precision and recall count "
        "labelled transactions (latest verdict, else the transaction's own label); overlap is "
        "the share of its hits the model alone already alerts on."
    )
    if result.overlap.height:
        with st.expander(f"Overlap between rules ({result.overlap.height} pair(s))"):
            st.dataframe(result.overlap.to_pandas(), hide_index=True, width="stretch")


# --- lists -------------------------------------------------------------------------------------


def lists_tab(store: RuleStore, editor: bool) -> None:
    """The lists, one list's entries, and (for editors) adding, removing, creating."""
    show_outcome("lists")
    lists = store.lists()
    if not lists:
        st.info("No lists yet." + (" Create one below." if editor else ""))
    else:
        st.dataframe(lists_table(lists), hide_index=True, width="stretch")
        name = str(st.selectbox("List", [li.name for li in lists], key="list_name"))
        _entries(store, name, editor)
    if editor:
        _create_list_form()


def _entries(store: RuleStore, name: str, editor: bool) -> None:
    expired = st.checkbox("Show expired entries too", key="list_expired")
    now = now_ms()
    entries = store.entries(name, include_expired=bool(expired))
    if entries:
        st.dataframe(entries_table(entries, now), hide_index=True, width="stretch")
    else:
        st.caption(f"{md(name)} has no entries in force.")
    if editor:
        _add_entries(name)
        held = [e.value for e in store.entries(name, include_expired=True)]
        if held:
            _remove_entries(name, held)
    with st.expander(f"Changes to {name}"):
        changes = store.list_history(name, limit=100)
        st.dataframe(
            pd.DataFrame(
                {
                    "#": [c.seq for c in changes],
                    "time (UTC)": [fmt_ms(c.at_ms) for c in changes],
                    "by": [safe_text(c.author) for c in changes],
                    "change": [c.change for c in changes],
                    "value": [safe_text(c.value) for c in changes],
                    "expires (UTC)": [fmt_ms(c.expires_at_ms) for c in changes],
                    "reason": [safe_text(c.reason) for c in changes],
                }
            ),
            hide_index=True,
            width="stretch",
        )


def _add_entries(name: str) -> None:
    with st.form("list_add"):
        st.markdown(f"**Add to {md(name)}** (a value already there is renewed)")
        st.text_area("Values to add, one per line", key="list_add_values")
        c = st.columns([1, 3])
        c[0].selectbox("Expires after", list(EXPIRIES), key="list_add_expiry")
        c[1].text_input("Reason", key="list_add_reason")
        st.form_submit_button("Add entries", on_click=_on_add_entries, args=(name,))


def _on_add_entries(name: str) -> None:
    s = st.session_state
    values = split_values(str(s["list_add_values"]))
    reason, expiry = str(s["list_add_reason"]), str(s["list_add_expiry"])
    done = attempt(
        "lists",
        lambda store: add_list_entries(
            database(),
            store,
            current_user(),
            name,
            values,
            expires_at_ms=expires_at(expiry, now_ms()),
            reason=reason,
        ),
    )
    if done:
        s["list_add_values"] = ""


def _remove_entries(name: str, held: list[str]) -> None:
    with st.form("list_remove"):
        st.markdown(f"**Remove from {md(name)}**")
        c = st.columns([3, 2])
        c[0].multiselect("Values to remove", held, key="list_remove_values")
        c[1].text_input("Reason", key="list_remove_reason")
        st.form_submit_button("Remove entries", on_click=_on_remove_entries, args=(name,))


def _on_remove_entries(name: str) -> None:
    s = st.session_state
    values = [str(v) for v in s.get("list_remove_values", [])]
    reason = str(s["list_remove_reason"])
    if attempt(
        "lists",
        lambda store: remove_list_entries(database(), store, current_user(), name, values, reason),
    ):
        s["list_remove_values"] = []


def _create_list_form() -> None:
    st.subheader("Create a list")
    with st.form("list_create"):
        c = st.columns([2, 1])
        c[0].text_input("Name", key="list_new_name", placeholder="trusted")
        c[1].text_input("Kind", value="account", key="list_new_kind")
        st.text_input("Description", key="list_new_description")
        st.form_submit_button("Create list", on_click=_on_create_list)


def _on_create_list() -> None:
    s = st.session_state
    name = str(s["list_new_name"]).strip()
    kind, description = str(s["list_new_kind"]), str(s["list_new_description"])
    if attempt(
        "lists",
        lambda store: create_list(database(), store, current_user(), name, kind, description),
    ):
        s["list_name"] = name
