"""The Airflow DAG runs ``fraudstream retrain`` with arguments the CLI accepts (parsed, not run)."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import typer

from fraudstream.cli._app import app
from fraudstream.cli._retrain import retrain

DAG_FILE = Path(__file__).parents[2] / "deploy" / "airflow" / "fraudstream_retrain.py"


def _assigned(tree: ast.Module) -> dict[str, str]:
    """Module-level string constants (implicitly concatenated literals included)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            out[node.targets[0].id] = node.value.value  # type: ignore[attr-defined]
    return out


def _bash_commands(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "BashOperator":
            for kw in node.keywords:
                if kw.arg == "bash_command":
                    found.append(ast.unparse(kw.value))
    return found


def test_the_dag_runs_retrain_with_options_the_cli_parses() -> None:
    tree = ast.parse(DAG_FILE.read_text())
    args = shlex.split(_assigned(tree)["RETRAIN_ARGS"])
    assert args[0] == "retrain"
    assert _bash_commands(tree) == ["f'{FRAUDSTREAM_BIN} {RETRAIN_ARGS}'"]
    command = typer.main.get_command(app)
    ctx = command.make_context("fraudstream", list(args))  # an unknown option raises here
    sub = command.get_command(ctx, "retrain")  # type: ignore[attr-defined]
    assert sub is not None and sub.callback is not None
    params = sub.make_context("retrain", args[1:]).params
    assert params["label_delay"] == "7d" and params["min_fraud_labels"] == 30
    assert sub.callback.__wrapped__ is retrain or sub.callback.__name__ == retrain.__name__


def test_an_option_the_cli_lacks_fails_the_check() -> None:
    import pytest

    sub = typer.main.get_command(app).get_command(None, "retrain")  # type: ignore[arg-type, attr-defined]
    with pytest.raises(Exception, match="No such option: --no-such-option") as caught:
        sub.make_context("retrain", ["--no-such-option", "1"])
    assert type(caught.value).__name__ == "NoSuchOption"
