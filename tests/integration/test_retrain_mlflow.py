"""``fraudstream retrain --mlflow-uri``: MLflow's registry shows the gate's transitions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudstream.model import Bundle
from fraudstream.model._retrain_tracking import (
    REGISTERED_MODEL,
    register_challenger,
    track_transition,
)

pytestmark = pytest.mark.integration


def test_registered_versions_follow_the_gate(tmp_path: Path, bundle: Bundle) -> None:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    assert track_transition(uri, bundle.version, "promoted") is None, "never registered"
    first = register_challenger(bundle, uri)
    second = register_challenger(bundle, uri)  # a later challenger: a new version
    assert int(second) == int(first) + 1
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = client.get_registered_model(REGISTERED_MODEL)
    assert model.aliases == {"challenger": second}
    version = client.get_model_version(REGISTERED_MODEL, second)
    assert version.tags == {"bundle_version": bundle.version, "fraudstream.event": "shadow_started"}

    assert track_transition(uri, bundle.version, "rejected") in (first, second)
    assert "challenger" not in client.get_registered_model(REGISTERED_MODEL).aliases
    number = track_transition(uri, bundle.version, "promoted")
    assert number is not None
    assert client.get_registered_model(REGISTERED_MODEL).aliases == {"champion": number}
    assert client.get_model_version(REGISTERED_MODEL, number).tags["fraudstream.event"] == (
        "promoted"
    )
