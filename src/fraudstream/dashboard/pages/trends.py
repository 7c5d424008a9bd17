"""Page script (run by Streamlit): see `fraudstream.dashboard._trends`."""

from __future__ import annotations

from fraudstream.dashboard._trends import render

render()
