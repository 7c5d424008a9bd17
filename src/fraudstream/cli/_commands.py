"""Imports every command module so each registers itself on the app."""

from __future__ import annotations

from fraudstream.cli import (
    _apikey,
    _bench,
    _broker,
    _dashboard,
    _demo,
    _detect,
    _evaluate,
    _export,
    _labels,
    _lists,
    _model,
    _notify,
    _replay,
    _rules,
    _schema,
    _score,
    _serve,
    _simulate,
    _train,
    _users,
)

__all__ = [
    "_apikey",
    "_bench",
    "_broker",
    "_dashboard",
    "_demo",
    "_detect",
    "_evaluate",
    "_export",
    "_labels",
    "_lists",
    "_model",
    "_notify",
    "_replay",
    "_rules",
    "_schema",
    "_score",
    "_serve",
    "_simulate",
    "_train",
    "_users",
]
