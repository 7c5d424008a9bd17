"""The Rules & lists page: the rule set in force with each rule's record in the detector, its
changes (add, edit, status, remove) for users who may change rules, a backtest on the store's
history, the version history with diffs, and the lists.

Every change is made through :mod:`fraudstream.dashboard._rules` (the role re-read from the
store, the signed-in user as author, audited); a refused rule shows where it is wrong and
nothing is saved. Without the role (or with no account at all) the page is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import streamlit as st

from fraudstream.dashboard._access import User, may
from fraudstream.dashboard._context import database, fmt_ms
from fraudstream.dashboard._model import _bundle_manifest
from fraudstream.dashboard._rules import change_rules, delta_text, history_text, rules_table
from fraudstream.dashboard._rules_panels import (
    backtest_tab,
    lists_tab,
    send_to_backtest,
    stats_since,
)
from fraudstream.dashboard._rules_ui import attempt, rule_store, show_outcome
from fraudstream.dashboard._session import FIRST_ADMIN, current_user
from fraudstream.dashboard._text import md
from fraudstream.errors import FraudstreamError
from fraudstream.rules import ACTIONS, MODES, STATUSES, Action, Rule, Status
from fraudstream.rules._diff import set_delta
from fraudstream.sinks import RuleSetVersion, RuleStore, rule_hits

__all__ = ["render"]

#: The status buttons: target status → label.
_MOVES: Final[dict[Status, str]] = {
    "draft": "Back to draft",
    "shadow": "Move to shadow",
    "live": "Put live",
    "paused": "Pause",
}
_STATS_RANGES: Final = {"last 24 hours": 1, "last 7 days": 7, "everything": None}


def render() -> None:
    st.title("Rules & lists")
    user = current_user()
    editor = may(user, "change rules")
    try:
        manifest = _bundle_manifest()
    except FraudstreamError:  # a promoted bundle gone: the Model page says so
        manifest = None
    served = str(manifest.get("mode", "")) if manifest else ""
    mode = str(
        st.selectbox(
            "Rule set (mode)",
            MODES,
            index=MODES.index(served) if served in MODES else 0,
            key="rules_mode",
            help="Each mode has its own rule set; the detector applies its bundle's mode's.",
        )
    )
    _access_note(user, editor)
    with rule_store() as store:
        current = store.current(mode)
        st.caption(_version_line(current))
        # only the open tab runs (``on_change="rerun"``): its queries, and its labels on screen
        tabs = st.tabs(list(_TABS), key="rules_tab", on_change="rerun")
        for tab, name in zip(tabs, _TABS, strict=True):
            if tab.open:
                with tab:
                    _TABS[name](store, current, editor)


def _access_note(user: User | None, editor: bool) -> None:
    if editor:
        assert user is not None  # noqa: S101 - may() is false without a user
        st.caption(f"Changes are saved as **{md(user.name)}** ({user.role})")
    elif user is None:
        st.info(f"Read-only: no dashboard account exists yet. Create one with `{FIRST_ADMIN}`.")
    else:
        st.info(
            f"Signed in as {md(user.name)} ({user.role}): read-only; changing rules and lists "
            "needs the analyst role."
        )


def _version_line(v: RuleSetVersion) -> str:
    if v.version == 0:
        return f"The {v.mode} rule set is empty (no version saved yet)."
    return (
        f"{v.mode} rule set **version {v.version}**, saved {fmt_ms(v.created_at_ms)} UTC by "
        f"{md(v.author)}: {len(v.rules)} rule(s), "
        f"{sum(r.status == 'live' for r in v.rules)} live, "
        f"{sum(r.status == 'shadow' for r in v.rules)} shadow."
    )


def _rules_tab(store: RuleStore, current: RuleSetVersion, editor: bool) -> None:
    """The rules in force with their record; adding and changing them for editors."""
    show_outcome("rules")
    label = st.radio(
        "Live statistics over",
        list(_STATS_RANGES),
        index=1,
        horizontal=True,
        key="rules_stats_range",
        help="Stored transactions each rule fired on in the detector (as a live or a shadow "
        "rule), their share of the range's transactions, and precision against the verdicts "
        "so far. Ranges end at the newest stored transaction.",
    )
    since_ms, transactions = stats_since(_STATS_RANGES[str(label)])
    if not current.rules:
        st.info("No rules yet." + (" Add one below." if editor else ""))
    else:
        hits = rule_hits(store, since_ms=since_ms)
        st.dataframe(
            rules_table(current.rules, hits, transactions), hide_index=True, width="stretch"
        )
        st.caption(f"{transactions:,} stored transaction(s) in the range.")
    if editor:
        _add_form(current.mode)
        if current.rules:
            _change_rule(current)


def _add_form(mode: str) -> None:
    st.subheader("Add a rule")
    with st.form("rule_add"):
        c = st.columns([2, 1, 1, 1])
        c[0].text_input("Id", key="rule_add_id", placeholder="big_transfer")
        c[1].selectbox("Action", ACTIONS, index=ACTIONS.index("review"), key="rule_add_action")
        c[2].number_input("Priority", value=100, step=1, key="rule_add_priority")
        c[3].selectbox("Status", STATUSES, key="rule_add_status")
        st.text_area(
            "Condition",
            key="rule_add_condition",
            placeholder='type == "TRANSFER" and amount > 10_000',
            help="The rule language of docs/rules.md: fields, features, score, list(...).",
        )
        st.text_input("Description", key="rule_add_description")
        st.text_input("Comment (kept with the version)", key="rule_add_comment")
        c = st.columns([1, 1, 3])
        c[0].form_submit_button("Add rule", type="primary", on_click=_on_add, args=(mode,))
        c[1].form_submit_button(
            "Backtest it (not saved)", on_click=_on_try, args=(None, "rule_add")
        )
    show_outcome("add")


def _on_add(mode: str) -> None:
    s = st.session_state

    def change(store: RuleStore) -> str:
        rule = Rule(
            str(s["rule_add_id"]).strip(),
            str(s["rule_add_condition"]),
            cast(Action, s["rule_add_action"]),
            str(s["rule_add_description"]),
            int(s["rule_add_priority"]),
            cast(Status, s["rule_add_status"]),
        )
        comment = str(s["rule_add_comment"])
        return change_rules(
            database(),
            current_user(),
            "rule added",
            f"{mode} {rule.id}",
            lambda author: store.add(mode, rule, author=author, comment=comment),
        )

    if attempt("add", change):
        for key in ("rule_add_id", "rule_add_condition", "rule_add_description"):
            s[key] = ""


def _change_rule(current: RuleSetVersion) -> None:
    st.subheader("Change a rule")
    ids = [r.id for r in current.rules]
    rule_id = str(st.selectbox("Rule", ids, key="rule_edit_id"))
    rule = next(r for r in current.rules if r.id == rule_id)
    key = f"rule_edit_{current.mode}_{rule_id}_v{current.version}"
    with st.form(key):
        c = st.columns([1, 1])
        c[0].selectbox("Action", ACTIONS, index=ACTIONS.index(rule.action), key=f"{key}_action")
        c[1].number_input("Priority", value=rule.priority, step=1, key=f"{key}_priority")
        st.text_area("Condition", value=rule.expression, key=f"{key}_condition")
        st.text_input("Description", value=rule.description, key=f"{key}_description")
        st.text_input("Comment (kept with the version)", key=f"{key}_comment")
        c = st.columns([1, 1, 3])
        c[0].form_submit_button(
            "Save changes", type="primary", on_click=_on_edit, args=(current.mode, rule_id, key)
        )
        c[1].form_submit_button("Backtest these changes", on_click=_on_try, args=(rule_id, key))
    show_outcome("edit")
    st.markdown(f"Status: **{rule.status}**")
    c = st.columns(len(_MOVES) + 1)
    for i, (status, label) in enumerate(_MOVES.items()):
        c[i].button(
            label,
            key=f"rule_status_{status}",
            disabled=rule.status == status,
            on_click=_on_status,
            args=(current.mode, rule_id, status),
        )
    sure = c[-1].checkbox(f"Remove {rule_id}", key=f"{key}_remove_sure")
    c[-1].button(
        "Remove rule",
        key="rule_remove",
        disabled=not sure,
        on_click=_on_remove,
        args=(current.mode, rule_id),
    )
    show_outcome("status")


def _on_try(rule_id: str | None, key: str) -> None:
    """The add or edit form's rule, as typed, to the Backtest tab (nothing saved)."""
    s = st.session_state
    typed_id = rule_id or str(s[f"{key}_id"]).strip()
    send_to_backtest(rule_id, typed_id, str(s[f"{key}_action"]), str(s[f"{key}_condition"]))


def _on_edit(mode: str, rule_id: str, key: str) -> None:
    s = st.session_state
    fields = {
        "expression": str(s[f"{key}_condition"]),
        "action": str(s[f"{key}_action"]),
        "priority": int(s[f"{key}_priority"]),
        "description": str(s[f"{key}_description"]),
    }
    comment = str(s[f"{key}_comment"])
    attempt(
        "edit",
        lambda store: change_rules(
            database(),
            current_user(),
            "rule edited",
            f"{mode} {rule_id}",
            lambda author: store.edit(mode, rule_id, author=author, comment=comment, **fields),
        ),
    )


def _on_status(mode: str, rule_id: str, status: Status) -> None:
    attempt(
        "status",
        lambda store: change_rules(
            database(),
            current_user(),
            f"rule moved to {status}",
            f"{mode} {rule_id}",
            lambda author: store.set_status(mode, rule_id, status, author=author),
        ),
    )


def _on_remove(mode: str, rule_id: str) -> None:
    attempt(
        "status",
        lambda store: change_rules(
            database(),
            current_user(),
            "rule removed",
            f"{mode} {rule_id}",
            lambda author: store.remove(mode, rule_id, author=author),
        ),
    )


def _history_tab(store: RuleStore, current: RuleSetVersion) -> None:
    """The audit trail with diffs, and what changed between any two versions."""
    if current.version == 0:
        st.info("No version saved yet.")
        return
    limit = int(st.number_input("Newest changes", 1, 1_000, 50, step=10, key="rules_history_n"))
    st.code(history_text(store.history(current.mode, limit=limit)), language=None)
    st.subheader("Compare two versions")
    versions = list(range(current.version, -1, -1))
    c = st.columns(2)
    old = int(c[0].selectbox("From version", versions, index=1, key="rules_diff_old"))
    new = int(c[1].selectbox("To version", versions, index=0, key="rules_diff_new"))
    a, b = store.at_version(current.mode, old), store.at_version(current.mode, new)
    st.code(delta_text(set_delta(a.rules, b.rules)), language=None)


#: The page's tabs: name → what runs in it (store, version in force, may the user change rules).
_TABS: Final[dict[str, Callable[[RuleStore, RuleSetVersion, bool], None]]] = {
    "Rules": _rules_tab,
    "Backtest": lambda store, current, _editor: backtest_tab(store, current),
    "History": lambda store, current, _editor: _history_tab(store, current),
    "Lists": lambda store, _current, editor: lists_tab(store, editor),
}
