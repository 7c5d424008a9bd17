"""Who uses this browser session: the sign-in form, a trusted proxy's header, signing out.

Two ways to be signed in. With ``dashboard.user_header`` set (a reverse proxy or identity
provider that signs users in and overwrites the header), the header names the user and the
role comes from ``dashboard_users`` (a name not in it is a viewer). Otherwise, or when the
header is missing, an account signs in with its password on the form; the session remembers
the name only, and the role is read from the store on every run (an account removed or demoted
loses its rights at once). A failed sign-in is audited and logged without the password and
makes this session wait (1 s, doubling up to 8 s) before it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import streamlit as st

from fraudstream.dashboard._access import User, audit, authenticate, get_user, users_exist
from fraudstream.dashboard._context import database, settings
from fraudstream.dashboard._text import header_user, md

__all__ = ["FIRST_ADMIN", "current_user", "page", "sidebar", "sign_in_page"]

#: How to create the first account (shown while there is none).
FIRST_ADMIN: Final = "fraudstream users add admin --role admin"

_SIGNED_IN: Final = "fs_signed_in"
_FAILURES: Final = "fs_sign_in_failures"
_HEADER_SEEN: Final = "fs_header_user"
_MAX_DELAY_S: Final = 8.0


def current_user() -> User | None:
    """The user of this session, its role as the store says now; ``None``: nobody signed in."""
    db = database()
    header = settings().dashboard.user_header
    name = header_user(st.context.headers, header)
    if name:
        account = get_user(db, name)
        user = User(name, account.role if account else "viewer")
        if st.session_state.get(_HEADER_SEEN) != name:  # once per session, not per rerun
            st.session_state[_HEADER_SEEN] = name
            audit(db, name, "sign-in", detail=f"header {header}, role {user.role}")
        return user
    signed_in = st.session_state.get(_SIGNED_IN)
    if not signed_in:
        return None
    account = get_user(db, str(signed_in))
    if account is None:  # removed since it signed in
        st.session_state.pop(_SIGNED_IN, None)
        return None
    return User(account.name, account.role)


def page(render: Callable[[], None]) -> None:
    """Run a page's ``render`` if this session may read the pages, else show the sign-in form.

    The app lists only the sign-in page to a session that must sign in; this check makes each
    page refuse on its own too.
    """
    if current_user() is None and users_exist(database()):
        sign_in_page()
    else:
        render()


def sign_in_page() -> None:
    """The only page shown while accounts exist and nobody is signed in."""
    st.title("Sign in")
    st.caption("fraudstream dashboard: sign in with the account an admin created for you.")
    with st.form("sign_in", clear_on_submit=True):
        name = st.text_input("User name", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    user = authenticate(database(), str(name), str(password))
    if user is None:
        failures = int(st.session_state.get(_FAILURES, 0)) + 1
        st.session_state[_FAILURES] = failures
        time.sleep(min(2.0 ** (failures - 1), _MAX_DELAY_S))  # slows guessing in this session
        st.error("Wrong user name or password.")
        return
    st.session_state[_FAILURES] = 0
    st.session_state[_SIGNED_IN] = user.name
    st.rerun()


def _sign_out() -> None:
    name = st.session_state.pop(_SIGNED_IN, None)
    if name:
        audit(database(), str(name), "sign-out")


def sidebar(user: User | None, any_account: bool) -> None:
    """Who is signed in (and a sign-out button), or how to create the first account."""
    with st.sidebar:
        if user is not None:
            st.caption(f"Signed in as **{md(user.name)}** ({user.role})")
            if st.session_state.get(_SIGNED_IN) == user.name:
                st.button("Sign out", key="sign_out", on_click=_sign_out)
        elif not any_account:
            st.warning(
                "No dashboard accounts yet: read-only, no verdicts. Create the first admin "
                f"with `{FIRST_ADMIN}`, then reload."
            )
