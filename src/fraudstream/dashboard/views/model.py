"""Page script (run by Streamlit): see `fraudstream.dashboard._model`."""

from __future__ import annotations

from fraudstream.dashboard._model import render
from fraudstream.dashboard._session import page

page(render)
