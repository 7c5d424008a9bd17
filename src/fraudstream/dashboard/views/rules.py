"""Page script (run by Streamlit): see `fraudstream.dashboard._rules_view`."""

from __future__ import annotations

from fraudstream.dashboard._rules_view import render
from fraudstream.dashboard._session import page

page(render)
