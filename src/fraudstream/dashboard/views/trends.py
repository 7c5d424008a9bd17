"""Page script (run by Streamlit): see `fraudstream.dashboard._trends`."""

from __future__ import annotations

from fraudstream.dashboard._session import page
from fraudstream.dashboard._trends import render

page(render)
