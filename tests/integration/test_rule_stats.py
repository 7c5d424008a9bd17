"""Rule statistics from the store: each rule's hits as a live and as a shadow rule, and its
precision as labels arrive (the latest verdict per transaction), through ``rules list --stats``.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fraudstream.cli._rules  # noqa: F401  (registers `rules`)
from fraudstream.cli import app
from fraudstream.rules import Rule
from fraudstream.schema import LabelMessage
from fraudstream.sinks import RuleHits, RuleStore, open_store, rule_hits

from ..unit.test_sinks import make_scored

pytestmark = pytest.mark.integration

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", None
    else:
        schema = request.getfixturevalue("pg_schema")
        monkeypatch.setenv("FRAUDSTREAM_STORE__PG_SCHEMA", schema)
        yield PG_URL, schema


def test_hits_and_precision_per_rule(store_url: tuple[str, str | None]) -> None:
    url, schema = store_url
    store = open_store(url, schema=schema)
    store.open()
    batch = make_scored(
        [f"t{i}" for i in range(6)], ["block", "allow", "allow", "block"] + ["allow"] * 2
    )
    batch.rule_set_version = 2
    batch.rules_fired = [("mule",), (), (), ("mule", "watch"), (), ()]
    batch.rules_shadow = [("big",), ("big",), ("big", "night"), (), (), ()]
    store.write(batch)
    store.flush()
    t0 = 1_700_000_500_000
    store.record_labels(
        [
            LabelMessage("t0", 1, t0, source="chargeback"),
            LabelMessage("t1", 1, t0, source="analyst"),
            LabelMessage("t1", 0, t0 + 1, source="analyst"),  # the latest verdict wins
            LabelMessage("t3", 0, t0, source="analyst"),
            LabelMessage("t4", 1, t0, source="analyst"),  # no rule fired: counts nowhere
        ]
    )
    store.close()
    with RuleStore(url, schema=schema) as rules:
        rules.import_rules(
            "pre_auth",
            [
                Rule("mule", 'nameDest == "M1"', "block", status="live"),
                Rule("watch", 'nameOrig == "C3"', "review", status="live"),
                Rule("big", "amount > 100", "review", status="shadow"),
                Rule("night", "hour < 6", "review", status="shadow"),
            ],
            author="t",
        )
        found = rule_hits(rules)
        assert rule_hits(rules, since_ms=batch.tx.event_time_ms[3] + 1) == []
    assert found == [
        RuleHits("mule", False, 2, 2, 1),
        RuleHits("watch", False, 1, 1, 0),
        RuleHits("big", True, 3, 2, 1),
        RuleHits("night", True, 1, 0, 0),
    ]
    assert [h.precision for h in found] == [0.5, 0.0, 0.5, None]

    result = CliRunner().invoke(app, ["rules", "list", "--stats", "--store-url", url])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["big", "shadow", "3", "2", "1", "50.0%"] in lines
    assert ["night", "shadow", "1", "0", "0", "-"] in lines
    assert ["mule", "live", "2", "2", "1", "50.0%"] in lines
