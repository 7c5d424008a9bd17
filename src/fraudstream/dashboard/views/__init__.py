"""Streamlit page scripts; the pages themselves live in ``fraudstream.dashboard._<page>``."""
