"""The Streamlit entry point (``streamlit run``): the pages over the store, behind a sign-in.

Settings come from the environment like every command (``FRAUDSTREAM_STORE__URL`` …);
``fraudstream dashboard`` sets them from its options. While accounts exist and nobody is signed
in, the only page is the sign-in form; with no account at all every page is read-only. The
audit log is an admin's page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fraudstream.dashboard._access import can, users_exist
from fraudstream.dashboard._context import database
from fraudstream.dashboard._session import current_user, sidebar
from fraudstream.dashboard._text import md
from fraudstream.errors import FraudstreamError

_PAGES = Path(__file__).parent / "views"

# The favicon is an emoji (drawn locally): a ``:material/…:`` page icon makes the browser fetch
# an SVG from fonts.gstatic.com, and the dashboard must work offline.
st.set_page_config(page_title="fraudstream", page_icon="🛡️", layout="wide")
try:
    user = current_user()
    any_account = users_exist(database())
except FraudstreamError as exc:
    st.error(f"The store cannot be read: {md(exc)}")
    st.stop()
pages = [
    st.Page(_PAGES / "live.py", title="Live", icon=":material/monitoring:", default=True),
    st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notification_important:"),
    st.Page(_PAGES / "trends.py", title="Trends", icon=":material/insights:"),
    st.Page(_PAGES / "model.py", title="Model & thresholds", icon=":material/tune:"),
    st.Page(_PAGES / "rules.py", title="Rules & lists", icon=":material/rule:"),
]
if user is None and any_account:
    # the menu is hidden and every page shows the sign-in form instead (``_session.page``); the
    # page asked for opens once signed in. (The scripts live in ``views/``: a ``pages/``
    # directory would make Streamlit list them in its own menu while this one is hidden.)
    st.navigation(pages, position="hidden").run()
else:
    if can(user, "admin"):
        pages.append(st.Page(_PAGES / "audit.py", title="Audit log", icon=":material/history:"))
    sidebar(user, any_account)
    st.navigation(pages).run()
