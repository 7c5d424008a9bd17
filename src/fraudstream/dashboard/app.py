"""The Streamlit entry point (``streamlit run``): four pages over the store.

Settings come from the environment like every command (``FRAUDSTREAM_STORE__URL`` …);
``fraudstream dashboard`` sets them from its options.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_PAGES = Path(__file__).parent / "pages"

# The favicon is an emoji (drawn locally): a ``:material/…:`` page icon makes the browser fetch
# an SVG from fonts.gstatic.com, and the dashboard must work offline.
st.set_page_config(page_title="fraudstream", page_icon="🛡️", layout="wide")
st.navigation(
    [
        st.Page(_PAGES / "live.py", title="Live", icon=":material/monitoring:", default=True),
        st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notification_important:"),
        st.Page(_PAGES / "trends.py", title="Trends", icon=":material/insights:"),
        st.Page(_PAGES / "model.py", title="Model & thresholds", icon=":material/tune:"),
    ]
).run()
