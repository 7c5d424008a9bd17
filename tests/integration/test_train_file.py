"""``fraudstream train DATA``: PaySim CSV and card Parquet files into bundles, MLflow logging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fraudstream.model import Bundle
from fraudstream.model._data import read_history
from fraudstream.schema import KINDS
from fraudstream.simulate import PAYSIM_COLUMNS, PaySimSimulator

FDH = Path(__file__).resolve().parents[3] / "shared" / "data" / "fdh" / "transactions.parquet"


def _run(args: list[str], models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUDSTREAM_MODELS_DIR": str(models_dir)}
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _paysim_csv(path: Path, rows: int) -> None:
    h = PaySimSimulator(accounts=3000, seed=3, rate_per_s=2.0).history(rows)
    pl.DataFrame(
        {
            "step": h.event_time_ms // 3_600_000,
            "type": [KINDS[k] for k in h.kind.tolist()],
            "amount": h.amount,
            "nameOrig": h.account,
            "oldbalanceOrg": h.old_balance_orig,
            "newbalanceOrig": h.new_balance_orig,
            "nameDest": h.counterparty,
            "oldbalanceDest": h.old_balance_dest,
            "newbalanceDest": h.new_balance_dest,
            "isFraud": h.label,
            "isFlaggedFraud": h.flagged,
        }
    ).write_csv(path)


def test_paysim_csv_trains_a_bundle_and_logs_to_mlflow(tmp_path: Path) -> None:
    csv = tmp_path / "paysim.csv"
    _paysim_csv(csv, 60_000)
    h = read_history(csv, "paysim")
    assert len(h) == 60_000 and np.all(np.diff(h.event_time_ms) >= 0)
    store = tmp_path / "mlruns"
    args = [str(csv), "--format", "paysim", "--mlflow-uri", store.as_uri()]
    out = _run([*args, "--allow-few-frauds"], tmp_path / "m")  # 25 test frauds: a marked bundle
    assert out.returncode == 0, out.stdout + out.stderr
    (bundle_dir,) = list((tmp_path / "m").iterdir())
    bundle = Bundle.load(bundle_dir)
    assert bundle.mode == "pre_auth"
    assert bundle.metrics["data"]["test_frauds"] > 0
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    mlflow.set_tracking_uri(store.as_uri())
    runs = mlflow.search_runs(experiment_names=["fraudstream"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["mode"] == "pre_auth"
    ap = bundle.metrics["lightgbm"]["average_precision"]
    assert run.data.metrics["lightgbm.average_precision"] == pytest.approx(ap)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://")) / "bundle"
    assert json.loads((artifacts / "bundle.json").read_text())["version"] == bundle.version


@pytest.mark.skipif(not FDH.is_file(), reason="the handbook's data is not available")
def test_card_parquet_trains_a_card_bundle(tmp_path: Path) -> None:
    small = tmp_path / "card.parquet"
    pl.read_parquet(FDH).filter(pl.col("CUSTOMER_ID") < 300).write_parquet(small)
    out = _run([str(small), "--format", "card"], tmp_path / "m")
    assert out.returncode == 0, out.stdout + out.stderr
    (bundle_dir,) = list((tmp_path / "m").iterdir())
    bundle = Bundle.load(bundle_dir)
    assert bundle.mode == "card"
    assert bundle.metrics["data"]["gap_ms"] == 7 * 86_400_000
    assert bundle.metrics["lightgbm"]["average_precision"] > 0.3


def test_missing_columns_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pl.DataFrame({"step": [1], "amount": [2.0]}).write_csv(bad)
    out = _run([str(bad)], tmp_path / "m")
    assert out.returncode != 0
    text = " ".join((out.stdout + out.stderr).split())  # rich wraps long lines
    assert "error: bad.csv has no column for type, nameOrig, nameDest, isFraud:" in text
    assert "Traceback" not in text


KAGGLE_COLUMNS = PAYSIM_COLUMNS[:11]  # step ... isFlaggedFraud, Kaggle's exact layout


def test_a_kaggle_layout_csv_trains_with_its_bad_row_skipped(tmp_path: Path) -> None:
    """The simulator's history rewritten to Kaggle's exact layout: 2,000 integer-looking amounts
    first (polars' inference then fails on the first decimal), one ``N/A`` amount."""
    ours = tmp_path / "ours.csv"
    simulate = [sys.executable, "-m", "fraudstream", "simulate", "--out", str(ours)]
    args = ["--count", "40000", "--rate", "2", "--seed", "5", "--fraud-rate", "0.01"]
    done = subprocess.run(
        [*simulate, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    df = pl.read_csv(ours, infer_schema_length=None).select(KAGGLE_COLUMNS)
    amounts = [
        "N/A" if i == 3_000 else str(round(a)) if i < 2_000 else repr(a)
        for i, a in enumerate(df["amount"].to_list())
    ]
    kaggle = tmp_path / "kaggle.csv"
    df.with_columns(pl.Series("amount", amounts)).write_csv(kaggle)
    assert kaggle.read_text().split("\n", 1)[0] == ",".join(KAGGLE_COLUMNS)
    with pytest.raises(pl.exceptions.ComputeError, match="could not parse"):
        pl.read_csv(kaggle)  # what train used to do with it
    out = _run([str(kaggle)], tmp_path / "m")
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())  # rich wraps long lines
    assert "kaggle.csv: skipped 1 of 40,000 rows with a missing or invalid value: " in text
    assert "amount: 1 row (line 3002 'N/A'); expected a number >= 0" in text
    assert "39,999 transactions read" in text
    (bundle_dir,) = list((tmp_path / "m").iterdir())
    bundle = Bundle.load(bundle_dir)
    data = bundle.metrics["data"]
    assert data["train_rows"] + data["test_rows"] <= 39_999 and data["test_frauds"] > 0
