"""``fraudstream rules backtest`` end to end: on a range of a real store (SQLite and PostgreSQL,
rows written by the detector's sink) and on a simulated history file, every figure checked
against the per-row reference evaluator and numpy counts on the same data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import fraudstream.cli._rules  # noqa: F401  (registers `rules`)
import fraudstream.cli._simulate  # noqa: F401  (registers `simulate`)
import fraudstream.rules
from fraudstream.cli import app
from fraudstream.cli._backtest import _scored
from fraudstream.config import Settings
from fraudstream.features import FeatureEngine, feature_names
from fraudstream.model import promote
from fraudstream.model._data import read_history
from fraudstream.model._train import label_book, train_bundle
from fraudstream.rules import Rule, RuleSet, Schema, batch_frame, validate
from fraudstream.rules._pack import read_pack, write_pack
from fraudstream.rules._reference import fires
from fraudstream.schema import (
    KINDS,
    SOURCE_PRECEDENCE,
    LabelMessage,
    ScoredBatch,
    TxBatch,
    read_labels,
)
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import RuleStore, open_store

from . import test_rule_stats

pytestmark = pytest.mark.integration

#: The store to write to and backtest: SQLite, then the real PostgreSQL in a fresh schema.
store_url = test_rule_stats.store_url

PRE = Schema.for_mode("pre_auth")
#: The starter packs as shipped in the source tree.
PACKS = Path(fraudstream.rules.__file__).parent / "packs"
THRESHOLDS = {"v1": (0.5, 0.9), "v2": (0.3, 0.7)}
#: Rules as a fraud team writes them, over fields, features, a list, the score and the hour.
RULES = [
    Rule("mules", 'nameDest in list("mules")', "block", status="live", priority=5),
    Rule(
        "big_new",
        'type == "TRANSFER" and amount > 50_000 and new_counterparty_for_account',
        "review",
    ),
    Rule("drain", "drains_balance and oldbalanceOrg > 1_000", "review", status="shadow"),
    Rule("scored", "score > 0.2 and amount > 10_000", "block"),
    Rule("night", "hour < 6 and tx_count_by_account_1h >= 2", "review", status="live"),
    Rule("trusted", 'nameOrig in list("trusted")', "allow", status="live"),
]


@dataclass
class Stored:
    """What the test wrote: the rows, their model decisions, verdicts and the lists."""

    rows: list[dict[str, Any]]
    model: np.ndarray
    truth: np.ndarray
    verdicts: dict[str, int]
    tx_ids: list[str]
    times: np.ndarray
    amount: np.ndarray
    lists: dict[str, frozenset[str]]


def _score(x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    col = {n: i for i, n in enumerate(names)}
    z = -4.0 + 0.25 * x[:, col["log_amount"]] + 2.0 * x[:, col["drains_balance"]]
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _batch(tx: TxBatch, x: np.ndarray, names: tuple[str, ...], version: str) -> ScoredBatch:
    score = _score(x, names)
    review, block = THRESHOLDS[version]
    decision = (score >= review).astype(np.int8) + (score >= block).astype(np.int8)
    batch = _scored(tx, names, x, score, decision)
    batch.model_version, batch.reasons = version, [[] for _ in range(len(tx))]
    return batch


def _row(
    tx: TxBatch, x: np.ndarray, names: tuple[str, ...], score: np.ndarray, i: int
) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(names, x[i].tolist(), strict=True))
    row.update(
        type=KINDS[tx.kind[i]],
        amount=float(tx.amount[i]),
        account=tx.account[i],
        counterparty=tx.counterparty[i],
        hour=float(tx.event_time_ms[i] // 3_600_000 % 24),
        oldbalanceOrg=float(tx.old_balance_orig[i]),
        oldbalanceDest=float(tx.old_balance_dest[i]),
        score=float(score[i]),
    )
    return row


def _write_store(url: str, schema: str | None) -> Stored:
    """3,000 simulated rows in batches of 500, scored by two model versions (v2 stores its
    features in another order), the live rules acting as in a detector, and verdicts."""
    history = PaySimSimulator(accounts=300, seed=4, fraud_rate=0.05).history(3_000)
    payees = sorted(set(history.counterparty))
    lists = {
        "mules": frozenset(payees[:15]),
        "trusted": frozenset(sorted(set(history.account))[:10]),
    }
    with RuleStore(url, schema=schema) as rules:
        for name, values in lists.items():
            rules.create_list(name, kind="account", author="t")
            rules.add_entries(name, sorted(values), author="t")
    live = RuleSet(RULES, PRE, lists=lists.keys())
    engine = FeatureEngine(mode="pre_auth")
    base = feature_names("pre_auth")
    store = open_store(url, schema=schema)
    store.open()
    for version, (review, block) in THRESHOLDS.items():
        metrics = {
            "selection": {"chosen": "m"},
            "m": {"review": {"threshold": review}, "block": {"threshold": block}},
        }
        store.record_model_version(version, json.dumps(metrics))
    rows: list[dict[str, Any]] = []
    model: list[np.ndarray] = []
    for lo in range(0, len(history), 500):
        tx = history.take(np.arange(lo, lo + 500))
        x = engine.update_and_extract(tx)
        version = "v1" if lo < 1_500 else "v2"
        names = base if version == "v1" else base[::-1]
        x = x if version == "v1" else x[:, ::-1].copy()
        batch = _batch(tx, x, names, version)
        model.append(batch.decision.copy())
        rows += [_row(tx, x, names, batch.score, i) for i in range(len(tx))]
        decided = live.decide(batch_frame(batch, live.columns), batch.decision, lists)
        batch.decision = decided.decision
        batch.rules_fired, batch.rules_shadow = decided.fired, decided.shadow_fired
        batch.rule_set_version = 1
        store.write(batch)
        store.flush()
    # verdicts: a label file's (the latest wins) on every 7th row, the truth elsewhere
    ids = history.tx_id
    t0 = int(history.event_time_ms.max())
    labels = [
        LabelMessage(ids[i], 1 - int(history.label[i] == 1), t0, source="analyst")
        for i in range(0, len(ids), 7)
    ]
    labels += [
        LabelMessage(ids[i], int(history.label[i] == 1), t0 + 5, source="chargeback")
        for i in range(0, len(ids), 14)
    ]
    store.record_labels(labels)
    store.close()
    verdicts = {m.tx_id: m.label for m in sorted(labels, key=lambda m: m.labelled_at_ms)}
    return Stored(
        rows,
        np.concatenate(model),
        history.label.copy(),
        verdicts,
        list(ids),
        history.event_time_ms.copy(),
        history.amount.copy(),
        lists,
    )


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["rules", "backtest", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _expected(
    rules: list[Rule],
    rows: list[dict[str, Any]],
    label: np.ndarray,
    model: np.ndarray,
    lists: dict[str, frozenset[str]],
    days: float,
) -> dict[str, dict[str, Any]]:
    """Per rule, from the reference evaluator, one row at a time, and numpy counts."""
    out = {}
    labelled, fraud = label >= 0, label == 1
    for r in rules:
        expr = validate(r, PRE)
        hit = np.array([fires(expr, row, lists) for row in rows])
        tp, lab = int((hit & fraud).sum()), int((hit & labelled).sum())
        out[r.id] = {
            "hits": int(hit.sum()),
            "hits_per_day": hit.sum() / days,
            "labelled_hits": lab,
            "frauds_hit": tp,
            "precision": tp / lab if lab else None,
            "recall": tp / fraud.sum(),
            "model_alerts_hit": int((hit & (model > 0)).sum()),
        }
    return out


def _check(doc: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    got = {r["rule_id"]: r for r in doc["rules"]}
    assert set(got) == set(expected)
    for rule_id, want in expected.items():
        for key, value in want.items():
            assert got[rule_id][key] == pytest.approx(value), (rule_id, key)


def test_backtest_of_a_store_range(tmp_path: Path, store_url: tuple[str, str | None]) -> None:
    url, schema = store_url
    stored = _write_store(url, schema)
    pack = tmp_path / "pack.yaml"
    pack.write_text(write_pack(RULES, mode="pre_auth"))
    # a range that leaves out the first and the last 100 rows
    lo, hi = int(stored.times[100]), int(stored.times[-100])
    inside = (stored.times >= lo) & (stored.times < hi)
    code, out, err = _run(
        str(pack), "--from", str(lo), "--to", str(hi), "--json", "--store-url", url
    )
    assert code == 0, err
    doc = json.loads(out)
    verdict = np.array([stored.verdicts.get(t, -1) for t in stored.tx_ids])
    assert doc["rows"] == int(inside.sum())
    t = stored.times[inside]
    days = (t.max() - t.min()) / 86_400_000
    rows = [r for r, keep in zip(stored.rows, inside, strict=True) if keep]
    expected = _expected(RULES, rows, verdict[inside], stored.model[inside], stored.lists, days)
    assert doc["labelled_rows"] == int((verdict[inside] >= 0).sum()) > 0
    _check(doc, expected)
    assert sum(e["model_alerts_hit"] for e in expected.values()) > 0
    assert all(expected[r]["hits"] > 0 for r in ("mules", "drain", "scored", "trusted"))

    # with the ground truth where no verdict is stored; the store's own rule set (v1: RULES)
    truth = np.where(verdict >= 0, verdict, stored.truth)
    with RuleStore(url, schema=schema) as rules:
        rules.import_rules("pre_auth", RULES, author="t")
    code, out, err = _run(
        "--from", str(lo), "--to", str(hi), "--ground-truth", "--json", "--store-url", url
    )
    assert code == 0, err
    doc = json.loads(out)
    in_order = sorted(RULES, key=lambda r: r.order)
    _check(doc, _expected(in_order, rows, truth[inside], stored.model[inside], stored.lists, days))
    assert doc["frauds"] == int((truth[inside] == 1).sum())

    # the table, and the per-rule table written as CSV
    table = tmp_path / "rules.csv"
    code, out, err = _run(
        "--from", str(lo), "--to", str(hi), "--out", str(table), "--store-url", url
    )
    assert code == 0, err
    assert "mules" in out and f"{int(inside.sum()):,} transactions" in out
    assert table.read_text().splitlines()[0].startswith("rule_id,action,status,hits")


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    stored = _write_store(url, None)
    lo, hi = str(int(stored.times[0])), str(int(stored.times[-1]) + 1)
    typo = tmp_path / "typo.yaml"
    typo.write_text(write_pack([Rule("big", "amout > 5", "review")], mode=None))
    code, _, err = _run(str(typo), "--from", lo, "--to", hi, "--store-url", url)
    assert code == 2 and "rule 'big': unknown field 'amout'" in err
    # a feature the store's model versions do not compute (post_tx only)
    post = tmp_path / "post.yaml"
    post.write_text(write_pack([Rule("err", "error_balance_orig > 0", "review")], mode="post_tx"))
    code, _, err = _run(str(post), "--from", lo, "--to", hi, "--store-url", url)
    assert code == 2 and "no column 'error_balance_orig'" in " ".join(err.split())
    good = tmp_path / "good.yaml"
    good.write_text(write_pack(RULES, mode="pre_auth"))
    code, _, err = _run(str(good), "--from", "2001-01-01", "--to", "2001-01-02", "--store-url", url)
    err = " ".join(err.split())
    assert code == 2 and "no stored transaction from 2001-01-01" in err
    assert "the store holds 3,000 from" in err


def test_backtest_of_a_simulated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "history.parquet"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(data),
            "--count",
            "20000",
            "--seed",
            "9",
            "--accounts",
            "2000",
            "--fraud-rate",
            "0.02",
        ],
    )
    assert result.exit_code == 0, result.output
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with RuleStore(url) as rules:
        rules.create_list("mules", kind="account", author="t")
    pack = tmp_path / "pack.yaml"
    file_rules = [r for r in RULES if r.id not in ("trusted",)]
    pack.write_text(write_pack(file_rules, mode="pre_auth"))
    code, out, err = _run(str(pack), str(data), "--ground-truth", "--json", "--store-url", url)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["skipped"] == ["skipped (they read score; give --model): scored"]
    # independently: the file's rows, their features in one pass with the labels file's book
    history = read_history(data, "paysim")
    messages = read_labels(data.with_name("history.labels.parquet")).labels
    book = label_book(messages)
    # state kept per partition of the configured topic, as the detector and training keep it
    partitions = Settings().kafka.partitions
    engine = FeatureEngine(mode="pre_auth", partitions=partitions, labels=book)
    x = engine.update_and_extract(history)
    names = feature_names("pre_auth")
    score = np.full(len(history), np.nan)
    rows = [_row(history, x, names, score, i) for i in range(len(history))]
    latest = {}
    for m in sorted(
        messages, key=lambda m: (m.labelled_at_ms, SOURCE_PRECEDENCE[m.source], m.label)
    ):
        latest[m.tx_id] = m.label
    verdict = np.array([latest.get(t, -1) for t in history.tx_id])
    label = np.where(verdict >= 0, verdict, history.label)
    days = (history.event_time_ms.max() - history.event_time_ms.min()) / 86_400_000
    kept = [r for r in file_rules if r.id != "scored"]
    expected = _expected(
        kept, rows, label, np.zeros(len(history), np.int8), {"mules": frozenset()}, days
    )
    _check(doc, expected)
    assert doc["rows"] == len(history) and doc["frauds"] == int((label == 1).sum()) > 0
    assert expected["big_new"]["hits"] > 0 and expected["drain"]["frauds_hit"] > 0
    # with a model: its scores and decisions, and the rule reading the score
    bundle = train_bundle(history, mode="pre_auth", labels=messages, seed=1, gap_ms=1_000)
    path = bundle.save(tmp_path / "models")
    code, out, err = _run(str(pack), str(data), "--model", str(path), "--json", "--store-url", url)
    assert code == 0, err
    doc = json.loads(out)
    score = bundle.score(x)
    model = bundle.decide(score)
    rows = [_row(history, x, names, score, i) for i in range(len(history))]
    verdicts = np.where(verdict >= 0, verdict, -1)  # no --ground-truth: the labels file only
    expected = _expected(file_rules, rows, verdicts, model, {"mules": frozenset()}, days)
    assert doc["skipped"] == [] and doc["labelled_rows"] == int((verdicts >= 0).sum())
    _check(doc, expected)
    assert expected["scored"]["hits"] > 0 and expected["scored"]["model_alerts_hit"] > 0

    # the registry's promoted bundle: the same figures
    promote(tmp_path / "models", bundle.version)
    monkeypatch.setenv("FRAUDSTREAM_MODELS_DIR", str(tmp_path / "models"))
    code, out, err = _run(str(pack), str(data), "--model", "current", "--json", "--store-url", url)
    assert code == 0, err
    assert json.loads(out)["rules"] == doc["rules"]


def test_import_the_starter_packs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    runner = CliRunner()

    def rules(*args: str) -> str:
        result = runner.invoke(app, ["rules", *args, "--store-url", url])
        assert result.exit_code == 0, result.output
        return result.stdout

    with RuleStore(url) as store:
        for name in ("mules", "trusted", "compromised_cards", "trusted_terminals"):
            store.create_list(name, kind="account", author="t")
    assert "the pre_auth starter pack imported" in rules("import", "--starter", "--author", "t")
    assert "no change" in rules("import", "--starter", "--author", "t")
    rules("import", "--starter", "--mode", "card", "--author", "t")
    with RuleStore(url) as store:
        for mode, name in (("pre_auth", "paysim_starter.yaml"), ("card", "card_starter.yaml")):
            version = store.current(mode)
            shipped = read_pack((PACKS / name).read_text()).rules
            assert {r.id for r in version.rules} == {r.id for r in shipped}
            assert {r.status for r in version.rules} == {"shadow"}
