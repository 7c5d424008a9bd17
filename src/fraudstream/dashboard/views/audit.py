"""Page script (run by Streamlit): see `fraudstream.dashboard._audit`."""

from __future__ import annotations

from fraudstream.dashboard._audit import render
from fraudstream.dashboard._session import page

page(render)
