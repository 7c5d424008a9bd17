"""The Audit log page (admins only): sign-ins, refusals, verdicts, labels, account changes.

Every value is shown as inert text (``safe_text``): a name typed into the sign-in form is data.
"""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from fraudstream.dashboard._access import can, list_users, recent_audit
from fraudstream.dashboard._context import database, fmt_ms
from fraudstream.dashboard._session import current_user
from fraudstream.dashboard._text import safe_text

__all__ = ["render"]


def render() -> None:
    st.title("Audit log")
    if not can(current_user(), "admin"):  # the page is only listed for admins; a check anyway
        st.error("The audit log needs the admin role.")
        return
    db = database()
    c = st.columns([1, 2])
    limit = int(c[0].number_input("Newest entries", 10, 10_000, 200, step=50, key="audit_limit"))
    actor = str(c[1].text_input("User (exact name)", key="audit_actor")).strip() or None
    entries = recent_audit(db, limit, actor)
    st.dataframe(
        pd.DataFrame(
            {
                "time (UTC)": [fmt_ms(e.at_ms) for e in entries],
                "user": [safe_text(e.actor) for e in entries],
                "action": [safe_text(e.action) for e in entries],
                "target": [safe_text(e.target) for e in entries],
                "detail": [safe_text(e.detail) for e in entries],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.subheader("Accounts")
    users = list_users(db)
    st.dataframe(
        pd.DataFrame(
            {
                "user": [safe_text(a.name) for a in users],
                "role": [a.role for a in users],
                "signs in with": ["password" if a.has_password else "proxy header" for a in users],
                "created (UTC)": [fmt_ms(a.created_at_ms) for a in users],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption("Accounts are managed with `fraudstream users add|list|remove` (see --help).")
