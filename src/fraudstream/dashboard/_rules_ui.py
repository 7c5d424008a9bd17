"""What the Rules & lists page's parts share: the rule store, and the outcome of a change shown
where it was made (a refused rule with its position, a refusal of the role, a success)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import streamlit as st

from fraudstream.dashboard._context import settings
from fraudstream.dashboard._rules import refusal, safe_lines
from fraudstream.dashboard._text import md
from fraudstream.errors import FraudstreamError
from fraudstream.rules import RuleError
from fraudstream.sinks import RuleStore

__all__ = ["attempt", "rule_store", "show_outcome", "show_refusal"]

_OUTCOMES: Final = "rules_outcomes"


@contextmanager
def rule_store() -> Iterator[RuleStore]:
    """The settings' store as a :class:`RuleStore`, open for this script run (one thread)."""
    s = settings()
    with RuleStore(s.store_url(), schema=s.store.pg_schema) as store:
        yield store


def show_refusal(exc: RuleError) -> None:
    """A refused rule: the reason and where, then the condition with a caret under the fault."""
    found = refusal(exc)
    st.error(f"Refused, nothing saved: {md(found.headline)}")
    if found.pointer:
        st.code(safe_lines(found.pointer.splitlines()), language=None)


def attempt(where: str, change: Callable[[RuleStore], str]) -> bool:
    """Run ``change`` on the store (from a button's callback); its sentence, or why it was
    refused, is shown by :func:`show_outcome` at ``where``. Whether it succeeded."""
    outcomes: dict[str, tuple[str, object]] = st.session_state.setdefault(_OUTCOMES, {})
    try:
        with rule_store() as store:
            outcomes[where] = ("ok", change(store))
    except RuleError as exc:
        outcomes[where] = ("refused", exc)
        return False
    except FraudstreamError as exc:  # AccessDenied (the role, re-read) or the store
        outcomes[where] = ("error", str(exc))
        return False
    return True


def show_outcome(where: str) -> None:
    """The outcome of the last change made at ``where`` (once)."""
    outcome = st.session_state.get(_OUTCOMES, {}).pop(where, None)
    if outcome is None:
        return
    level, value = outcome
    if isinstance(value, RuleError):
        show_refusal(value)
    elif level == "ok":
        st.success(md(value))
    else:
        st.error(md(value))
