"""Page script (run by Streamlit): see `fraudstream.dashboard._model`."""

from __future__ import annotations

from fraudstream.dashboard._model import render

render()
