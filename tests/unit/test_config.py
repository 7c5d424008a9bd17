from __future__ import annotations

import pytest

from fraudstream.config import Settings


def test_env_nested_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_USERNAME", "key")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_PASSWORD", "s3cret")
    s = Settings()
    assert s.kafka.bootstrap_servers == "broker.example:9092"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())
    conf = s.kafka.client_config(s.kafka.bootstrap_servers)
    assert conf["sasl.password"] == "s3cret" and conf["security.protocol"] == "SASL_SSL"


def test_cli_overrides_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_DETECT__BATCH_MAX", "100")
    monkeypatch.setenv("FRAUDSTREAM_DETECT__GROUP_ID", "from-env")
    s = Settings(detect={"batch_max": 7})  # type: ignore[arg-type]
    assert s.detect.batch_max == 7
    assert s.detect.group_id == "from-env"


def test_default_store_is_sqlite_under_data_dir(tmp_path: object) -> None:
    s = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    assert s.store_url() == f"sqlite:///{tmp_path}/fraudstream.db"


def test_invalid_setting_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings()
