"""Page script (run by Streamlit): see `fraudstream.dashboard._alerts`."""

from __future__ import annotations

from fraudstream.dashboard._alerts import render
from fraudstream.dashboard._session import page

page(render)
