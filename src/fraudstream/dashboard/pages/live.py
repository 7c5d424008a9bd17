"""Page script (run by Streamlit): see `fraudstream.dashboard._live`."""

from __future__ import annotations

from fraudstream.dashboard._live import render

render()
