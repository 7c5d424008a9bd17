"""Page script (run by Streamlit): see `fraudstream.dashboard._live`."""

from __future__ import annotations

from fraudstream.dashboard._live import render
from fraudstream.dashboard._session import page

page(render)
