"""``fraudstream serve``: synchronous decisions from the stream's own detectors (docs/api.md).

The app (:func:`create_app`) produces each request's transaction to the transactions topic and
awaits the owning detector's decision on the decisions topic, within a time budget; API keys
with scopes (:func:`create_key`) guard every route but the probes.
"""

from __future__ import annotations

from fraudstream.api._app import create_app
from fraudstream.api._keys import (
    SCOPES,
    ApiKey,
    KeyChecker,
    NewKey,
    create_key,
    list_keys,
    parse_scopes,
    revoke_key,
)
from fraudstream.api._service import ApiService, build_service, serving_model

__all__ = [
    "SCOPES",
    "ApiKey",
    "ApiService",
    "KeyChecker",
    "NewKey",
    "build_service",
    "create_app",
    "create_key",
    "list_keys",
    "parse_scopes",
    "revoke_key",
    "serving_model",
]
