"""Airflow DAG: one ``fraudstream retrain`` cycle a day (docs/retrain.md).

The task runs the same command as ``fraudstream retrain --every 24h`` runs each cycle: the gate
judges the challenger in shadow, and a new challenger is trained when none is. Settings come
from the worker's environment (``FRAUDSTREAM_STORE__URL``, ``FRAUDSTREAM_MODELS_DIR``, …);
``FRAUDSTREAM_BIN`` names the ``fraudstream`` executable (default: on the PATH).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

#: The arguments, as the CLI takes them (tests/unit/test_retrain_dag.py parses them with it).
RETRAIN_ARGS = (
    "retrain --lookback 30d --label-delay 7d --eval-window 2d --margin 0.01"
    " --min-fraud-labels 30 --max-shadow 14d"
)
FRAUDSTREAM_BIN = os.environ.get("FRAUDSTREAM_BIN", "fraudstream")

with DAG(
    dag_id="fraudstream_retrain",
    description="Train a challenger from the store, shadow it, promote it through the gate",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # two cycles must not judge or train the same challenger at once
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=30)},
    tags=["fraudstream"],
) as dag:
    BashOperator(task_id="retrain", bash_command=f"{FRAUDSTREAM_BIN} {RETRAIN_ARGS}")
