"""Optional MLflow tracking of a trained bundle (imported only when asked for)."""

from __future__ import annotations

import os
from typing import Any

from fraudstream.errors import ModelError
from fraudstream.model._bundle import Bundle

__all__ = ["log_bundle"]


def _flat(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)


def log_bundle(bundle: Bundle, tracking_uri: str, experiment: str = "fraudstream") -> str:
    """One MLflow run: training params, numeric metrics (flattened) and the bundle directory."""
    if bundle.path is None:
        raise ModelError("save the bundle before logging it to MLflow")
    if tracking_uri.startswith("file:"):
        # MLflow 3 refuses its file store unless asked; a file:// URI given here is that ask.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    training = bundle.info.get("training", {})
    params = {k: v for k, v in training.items() if not isinstance(v, dict)}
    params.update({f"lgbm.{k}": v for k, v in training.get("lightgbm_params", {}).items()})
    metrics: dict[str, float] = {}
    _flat("", bundle.metrics, metrics)
    with mlflow.start_run(run_name=bundle.version) as run:
        mlflow.set_tag("bundle_version", bundle.version)
        mlflow.log_params({"mode": bundle.mode, **params})
        mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items()})
        mlflow.log_artifacts(str(bundle.path), artifact_path="bundle")
        return str(run.info.run_id)
