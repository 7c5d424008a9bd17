"""MLflow's model registry for retraining (optional, imported only with ``--mlflow-uri``).

A challenger is logged as a run (:func:`~fraudstream.model._tracking.log_bundle`) and registered
as a new version of the registered model; each gate step then moves the aliases: ``challenger``
on the version in shadow, ``champion`` on the promoted one, and tags the version with its last
step (``fraudstream.event``), so MLflow shows the same transitions as ``model_events``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Final

from fraudstream.model._bundle import Bundle
from fraudstream.model._tracking import log_bundle

__all__ = ["REGISTERED_MODEL", "register_challenger", "track_transition"]

#: The registered model's name in MLflow.
REGISTERED_MODEL: Final = "fraudstream"
_TAG: Final = "bundle_version"


def _client(tracking_uri: str) -> Any:
    import mlflow  # after log_bundle or track_transition set the file-store switch

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient()


def register_challenger(bundle: Bundle, tracking_uri: str, name: str = REGISTERED_MODEL) -> str:
    """Log ``bundle`` (saved) as a run, register it as a version of ``name`` with the alias
    ``challenger``; the MLflow version number."""
    run_id = log_bundle(bundle, tracking_uri)
    client = _client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:  # not registered yet
        client.create_registered_model(name)
    version = client.create_model_version(
        name, f"runs:/{run_id}/bundle", run_id=run_id, tags={_TAG: bundle.version}
    )
    client.set_model_version_tag(name, version.version, "fraudstream.event", "shadow_started")
    client.set_registered_model_alias(name, "challenger", version.version)
    return str(version.version)


def track_transition(
    tracking_uri: str, bundle_version: str, event: str, name: str = REGISTERED_MODEL
) -> str | None:
    """Record ``event`` (promoted, rejected, rolled_back…) on the MLflow version of
    ``bundle_version``: a tag, and the ``champion`` alias when it is promoted or rolled back to;
    ``None`` when that bundle was never registered."""
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = _client(tracking_uri)
    found = client.search_model_versions(f"name = '{name}' and tags.{_TAG} = '{bundle_version}'")
    if not found:
        return None
    number = str(found[0].version)
    client.set_model_version_tag(name, number, "fraudstream.event", event)
    if event in ("promoted", "rolled_back_to"):
        client.set_registered_model_alias(name, "champion", number)
    if event in ("promoted", "rejected"):
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # the alias may be gone already
            client.delete_registered_model_alias(name, "challenger")
    return number
