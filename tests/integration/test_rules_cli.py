"""``fraudstream rules`` and ``fraudstream lists`` as an operator runs them (a subprocess each),
against a SQLite store and the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.sinks import RuleStore

from ._pg_util import PG_URL

pytestmark = pytest.mark.integration


def _run(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", *args, "--store-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "80", "FRAUDSTREAM_DATA_DIR": "unused", **(env or {})},
    )


def _ok(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = _run(url, *args, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _refused(url: str, *args: str) -> str:
    """The one error line of a refused command (exit 2, no traceback)."""
    out = _run(url, *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    return errors[0]


def test_rules_and_lists_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    long_expr = 'type == "TRANSFER" and amout > 10_000 and new_counterparty_for_account'
    line = _refused(url, "rules", "add", "big", long_expr, "--action", "review")
    # one line (no wrapping at 80 columns) with the rule, the fault and the position
    assert line.startswith("error: rule 'big': unknown field 'amout' in mode 'pre_auth'")
    assert line.endswith("at column 24")
    assert "no rules in the pre_auth rule set (version 0)" in _ok(url, "rules", "list")

    out = _ok(url, "lists", "create", "mules", "--kind", "account", "--author", "ana")
    assert out.strip() == "list mules created (account)"
    out = _ok(url, "lists", "add", "mules", "C1", "C2", "--ttl", "7d", "--reason", "case 12")
    assert "2 value(s) added to list mules, until" in out
    assert "not in the future" in _refused(
        url, "lists", "add", "mules", "C3", "--expires", "2020-01-01"
    )
    assert "has no 'C9'" in _refused(url, "lists", "remove", "mules", "C9")

    expr = 'type == "TRANSFER" and amount > 10_000'
    out = _ok(url, "rules", "add", "big", expr, "--action", "review", "--author", "ana", "-m", "v1")
    assert out.splitlines() == [
        "rule big added: the pre_auth rule set is now version 1 (ana)",
        "  add big",
        f"    + review, priority 100, draft: {expr}",
    ]
    rule = 'nameDest in list("mules")'
    _ok(
        url,
        "rules",
        "add",
        "mule",
        rule,
        "--action",
        "block",
        "--status",
        "live",
        "--author",
        "bob",
    )
    assert "unknown list 'mule'" in _refused(url, "rules", "validate", 'nameDest in list("mule")')
    assert _ok(url, "rules", "validate", "score > 0.5").strip() == "valid in mode pre_auth"
    _ok(url, "rules", "set-status", "big", "live", "--author", "cy", "-m", "go live")
    out = _ok(url, "rules", "edit", "big", "--priority", "5", "--author", "cy")
    assert "now version 4" in out and "priority: 100 -> 5" in out
    assert "unknown status 'on'" in _refused(url, "rules", "set-status", "big", "on")
    assert "no rule 'nope'" in _refused(url, "rules", "remove", "nope")

    listed = _ok(url, "rules", "list").splitlines()
    assert listed[1:] == [
        f"mule  block   live      100  {rule}",
        f"big   review  live        5  {expr}",
    ]
    history = _ok(url, "rules", "history", "--rule", "big").splitlines()
    assert [h.split("  ")[0] for h in history if h.startswith("v")] == ["v4", "v3", "v1"]
    assert "    # go live" in history and "    status: draft -> live" in history
    assert "2 rule(s) changed" in _ok(url, "rules", "diff", "1")

    pack = tmp_path / "pack.json"
    _ok(url, "rules", "export", str(pack))
    assert "no change: the pre_auth rule set stays at version 4" in _ok(
        url, "rules", "import", str(pack)
    )
    pack.write_text(pack.read_text().replace("amount > 10_000", "amount > 10_000 and"))
    line = _refused(url, "rules", "import", str(pack))
    assert line.startswith("error: rule 'big': ") and "column" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: x, expresion: 'amount > 1', action: review}\n")
    assert "rules[0]: unknown key 'expresion'" in _refused(url, "rules", "import", str(bad))

    with RuleStore(url) as store:  # nothing refused was written
        assert store.token("pre_auth").rules_version == 4
        assert store.lists_snapshot().lists == {"mules": frozenset({"C1", "C2"})}
    shown = _ok(url, "lists", "show", "mules").splitlines()
    assert [s.split()[0] for s in shown] == ["C1", "C2"] and all("case 12" in s for s in shown)
    _ok(url, "lists", "remove", "mules", "C1", "--reason", "cleared")
    assert "1 in force" in _ok(url, "lists", "list")


def test_the_store_from_the_settings_on_postgresql(pg_schema: str) -> None:
    env = {"FRAUDSTREAM_STORE__PG_SCHEMA": pg_schema}
    _ok(PG_URL, "rules", "add", "r1", "amount > 5", "--action", "block", "--author", "ana", env=env)
    _ok(PG_URL, "lists", "create", "trusted", "--author", "ana", env=env)
    with RuleStore(PG_URL, schema=pg_schema) as store:
        assert store.token("pre_auth") == (1, 1)
        assert store.current("pre_auth").rules[0].expression == "amount > 5"
