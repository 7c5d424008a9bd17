"""``fraudstream export`` end to end: a PostgreSQL store to a real S3 server (moto's, on
127.0.0.1, over HTTP) and a SQLite store to a directory hold the same rows; a re-run skips the
closed days and uploads the open one again unchanged; errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from fraudstream.sinks import PostgresStore, SQLiteStore
from tests._export_data import fill

from ._pg_util import PG_URL

pytestmark = pytest.mark.integration

BUCKET = "bank-exports"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "COLUMNS": "300",
        **extra,
    }


def _export(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", "export", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def test_postgres_to_s3_equals_sqlite_to_a_directory(
    s3_endpoint: str, pg_schema: str, tmp_path: Path
) -> None:
    pg = PostgresStore(PG_URL, schema=pg_schema)
    pg.open()
    data = fill(pg)
    pg.close()
    lite = SQLiteStore(tmp_path / "store.db")
    lite.open()
    fill(lite)
    lite.close()
    s3 = _s3(s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)

    env = _env(FRAUDSTREAM_STORE__PG_SCHEMA=pg_schema)
    url = f"s3://{BUCKET}/fraudstream"
    first = _export(url, "--store-url", PG_URL, "--s3-endpoint-url", s3_endpoint, env=env)
    assert first.returncode == 0, first.stderr
    local = _export(
        str(tmp_path / "out"), "--store-url", f"sqlite:///{tmp_path / 'store.db'}", env=_env()
    )
    assert local.returncode == 0, local.stderr

    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="fraudstream/")["Contents"]
    keys = {o["Key"]: o["ETag"] for o in listed}
    assert "fraudstream/_fraudstream_export.json" in keys
    files = sorted(k for k in keys if k.endswith(".parquet"))
    # transactions and labels on three days; alerts by the day they were raised: all on the
    # third (every batch was processed after its last transaction)
    assert len(files) == 3 + 1 + 3
    for key in files:
        got = tmp_path / "got.parquet"
        s3.download_file(BUCKET, key, str(got))
        mine = tmp_path / "out" / key.removeprefix("fraudstream/")
        from_pg, from_sqlite = pq.read_table(got), pq.read_table(mine)
        assert from_pg.num_rows > 0
        if "recorded_at_ms" in from_pg.column_names:  # when each store recorded the label
            from_pg, from_sqlite = (
                t.drop_columns(["recorded_at_ms"]) for t in (from_pg, from_sqlite)
            )
        assert from_pg.equals(from_sqlite), key
    assert pq.read_table(tmp_path / "out" / "transactions").num_rows == len(data.tx_day)

    again = _export(url, "--store-url", PG_URL, "--s3-endpoint-url", s3_endpoint, env=env)
    assert again.returncode == 0, again.stderr
    assert "4 closed day(s) already there" in again.stdout  # two of transactions, of labels
    relisted = s3.list_objects_v2(Bucket=BUCKET, Prefix="fraudstream/")["Contents"]
    assert {o["Key"]: o["ETag"] for o in relisted if o["Key"].endswith(".parquet")} == {
        k: keys[k] for k in files
    }


def test_errors_are_one_line(s3_endpoint: str, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    lite = SQLiteStore(tmp_path / "store.db")
    lite.open()
    fill(lite, n=30)
    lite.close()
    missing = _export(
        "s3://no-such-bucket/x",
        "--store-url",
        store,
        "--s3-endpoint-url",
        s3_endpoint,
        env=_env(),
    )
    assert missing.returncode == 1
    assert "no-such-bucket" in missing.stderr and "Traceback" not in missing.stderr
    bad_table = _export(
        str(tmp_path / "o"), "--tables", "secrets", "--store-url", store, env=_env()
    )
    assert bad_table.returncode == 2 and "unknown table(s) ['secrets']" in bad_table.stderr
    bad_day = _export(str(tmp_path / "o"), "--since", "yesterday", "--store-url", store, env=_env())
    assert bad_day.returncode == 2 and "is not a date" in bad_day.stderr
