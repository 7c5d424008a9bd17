"""The Rules & lists page's helpers against a real SQLite store: the rule table with each rule's
record in the detector, the history loader for backtests, texts, and every change checked
against the user's role in the store (audited, signed by the user, nothing saved on refusal).

``seed_rules_store`` is shared with the page's AppTest and browser tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pytest

from fraudstream.dashboard import Database
from fraudstream.dashboard._access import AccessDenied, User, add_user, recent_audit
from fraudstream.dashboard._rules import (
    EXPIRIES,
    add_list_entries,
    change_rules,
    create_list,
    delta_text,
    expires_at,
    history_text,
    refusal,
    remove_list_entries,
    rules_table,
    split_values,
)
from fraudstream.dashboard._rules_backtest import (
    capped_start,
    columns_read,
    default_range,
    history,
    stored_span,
)
from fraudstream.features import feature_names
from fraudstream.model._costs import Thresholds, decide
from fraudstream.rules import Rule, RuleError, Schema, backtest
from fraudstream.rules._diff import set_delta
from fraudstream.schema import DECISIONS, KINDS, LabelMessage, ScoredBatch, TxBatch
from fraudstream.sinks import RuleStore, open_store, rule_hits

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
#: The newest stored transaction's event time.
NEWEST_MS: Final = 1_700_000_000_000 + 10 * DAY_MS
THRESHOLDS: Final = Thresholds(review=0.8, block=0.95)
MULE: Final = "M1"
PASSWORD: Final = "correct horse battery"


@dataclass(frozen=True)
class Tx:
    """One seeded transaction and what the running detector recorded for it."""

    i: int
    time_ms: int
    kind: str
    amount: float
    counterparty: str
    score: float
    own_label: int | None  # the simulator's isFraud
    verdict: int | None  # an analyst's label, arrived later
    live: tuple[str, ...]  # live rules fired
    shadow: tuple[str, ...]  # shadow rules fired

    @property
    def tx_id(self) -> str:
        return f"tx{self.i}"

    @property
    def label(self) -> int:
        """What a backtest counts: the verdict, else the own label, else -1."""
        for v in (self.verdict, self.own_label):
            if v is not None:
                return v
        return -1


def _tx(i: int) -> Tx:
    # ten transactions nine days before the newest, thirty in its last 30 hours
    time = NEWEST_MS - 9 * DAY_MS + i * 1000 if i < 10 else NEWEST_MS - (39 - i) * HOUR_MS
    kind = "TRANSFER" if i % 2 == 0 else "PAYMENT"
    amount = 1000.0 * (i % 8) + 500.0
    mule = i % 5 == 0
    return Tx(
        i=i,
        time_ms=time,
        kind=kind,
        amount=amount,
        counterparty=MULE if mule else f"M{100 + i}",
        score=round(i / 40, 3),
        own_label=None if i % 3 == 0 else int(mule),
        verdict=(1 if i % 10 == 0 else 0) if mule and i >= 10 else None,
        live=("mules",) if mule else (),
        shadow=("big",) if kind == "TRANSFER" and amount > 5000 else (),
    )


#: The seeded history, oldest first.
SEED: Final = tuple(_tx(i) for i in range(40))
#: The rule set the seed's detector ran (version 1, by "cy") and its list.
RULES: Final = (
    Rule("mules", 'nameDest in list("mules")', "block", "known mules", 10, "live"),
    Rule("big", 'type == "TRANSFER" and amount > 5_000', "review", "big transfers", 100, "shadow"),
)


def _batch(rows: tuple[Tx, ...]) -> ScoredBatch:
    n = len(rows)
    names = feature_names("pre_auth")
    model = decide(np.array([t.score for t in rows]), THRESHOLDS)
    final = np.where([bool(t.live) for t in rows], DECISIONS.index("block"), model)
    tx = TxBatch(
        tx_id=[t.tx_id for t in rows],
        event_time_ms=np.array([t.time_ms for t in rows], np.int64),
        account=[f"C{t.i % 7}" for t in rows],
        counterparty=[t.counterparty for t in rows],
        kind=np.array([KINDS.index(t.kind) for t in rows], np.int8),
        amount=np.array([t.amount for t in rows]),
        old_balance_orig=np.full(n, 10_000.0),
        new_balance_orig=np.full(n, np.nan),
        old_balance_dest=np.zeros(n),
        new_balance_dest=np.full(n, np.nan),
        label=np.array([-1 if t.own_label is None else t.own_label for t in rows], np.int8),
        step=np.zeros(n, np.int64),
        flagged=np.zeros(n, np.int8),
    )
    features = np.zeros((n, len(names)), np.float32)
    features[:, names.index("tx_count_by_account_1h")] = [t.i % 4 for t in rows]
    return ScoredBatch(
        tx=tx,
        feature_names=names,
        features=features,
        score=np.array([t.score for t in rows]),
        decision=final.astype(np.int8),
        reasons=[[("amount_vs_mean_by_account", 2.0, 1.0)] if d else [] for d in final],
        model_version="seed-v1",
        partition=np.zeros(n, np.int32),
        offset=np.arange(n, dtype=np.int64),
        processed_at_ms=NEWEST_MS + 1000,
        rule_set_version=1,
        rules_fired=[t.live for t in rows],
        rules_shadow=[t.shadow for t in rows],
    )


def seed_rules_store(
    url: str, accounts: dict[str, str] | None = None, schema: str | None = None
) -> None:
    """``SEED`` scored and stored, its verdicts, the ``mules`` list (holding ``M1``), ``RULES``
    as version 1 by ``cy``, and dashboard accounts (name → role, password ``PASSWORD``), in
    the store at ``url`` (PostgreSQL: in ``schema``)."""
    store = open_store(url, schema=schema)
    store.open()
    chosen = {"review": {"threshold": THRESHOLDS.review}, "block": {"threshold": THRESHOLDS.block}}
    metrics = {"selection": {"chosen": "lgbm"}, "lgbm": chosen}  # as the detector records them
    store.record_model_version("seed-v1", json.dumps(metrics))
    store.write(_batch(SEED))
    store.flush()
    store.record_labels(
        [
            LabelMessage(t.tx_id, t.verdict, NEWEST_MS + 60_000, source="analyst")  # type: ignore[arg-type]
            for t in SEED
            if t.verdict is not None
        ]
    )
    store.close()
    with RuleStore(url, schema=schema) as rules:
        rules.create_list("mules", kind="account", description="known mules", author="cy")
        rules.add_entries("mules", [MULE], author="cy", reason="chargebacks")
        rules.import_rules("pre_auth", RULES, author="cy", comment="first rules")
    db = Database(url, schema=schema)
    try:
        for name, role in (accounts or {}).items():
            add_user(db, name, role, PASSWORD, actor="test")
    finally:
        db.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = f"sqlite:///{tmp_path / 'store.db'}"
    seed_rules_store(path, {"ana": "analyst", "vic": "viewer"})
    return path


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    database = Database(url)
    yield database
    database.close()


@pytest.fixture
def store(url: str) -> Iterator[RuleStore]:
    with RuleStore(url) as rules:
        yield rules


ANA = User("ana", "analyst")


def test_rules_table_shows_each_rules_record(store: RuleStore) -> None:
    since = NEWEST_MS - DAY_MS
    recent = [t for t in SEED if t.time_ms >= since]
    table = rules_table(store.current("pre_auth").rules, rule_hits(store, since_ms=since), 25)
    assert table["id"].tolist() == ["mules", "big"]  # decision order: block before review
    mules = table.set_index("id").loc["mules"]
    hits = [t for t in recent if "mules" in t.live]
    verdicts = [t.verdict for t in hits if t.verdict is not None]
    assert (mules["hits"], mules["as live"], mules["as shadow"]) == (len(hits), len(hits), 0)
    assert (mules["labelled"], mules["frauds"]) == (len(verdicts), sum(verdicts))
    assert mules["hit rate"] == f"{len(hits) / 25:.1%}"
    assert mules["precision"] == f"{sum(verdicts) / len(verdicts):.1%}"
    assert (mules["author"], mules["status"], mules["condition"]) == (
        "cy",
        "live",
        'nameDest in list("mules")',
    )
    big = table.set_index("id").loc["big"]
    shadow_hits = [t for t in recent if "big" in t.shadow]
    assert (big["hits"], big["as shadow"]) == (len(shadow_hits), len(shadow_hits))
    judged = [t.verdict for t in shadow_hits if t.verdict is not None]
    assert big["precision"] == f"{sum(judged) / len(judged):.1%}"
    quiet = rule_hits(store, since_ms=NEWEST_MS)  # only the newest transaction: no verdict
    assert rules_table(store.current("pre_auth").rules, quiet, 1)["precision"].tolist() == [
        "—",
        "—",
    ]
    assert rules_table(store.current("pre_auth").rules, [], 0)["hit rate"].tolist() == ["—"] * 2


def test_history_of_a_range_capped_at_its_newest_rows(db: Database) -> None:
    assert stored_span(db) == (SEED[0].time_ms, NEWEST_MS)
    start, end = default_range(NEWEST_MS)
    assert (start, end) == (NEWEST_MS - 7 * DAY_MS, NEWEST_MS + 1)
    wanted = sorted((t for t in SEED if start <= t.time_ms < end), key=lambda t: t.time_ms)
    columns = columns_read(RULES, Schema.for_mode("pre_auth"))
    assert columns == ("amount", "counterparty", "type")
    found = history(db, columns, start, end, limit=1000)
    assert (found.start_ms, found.truncated) == (start, False)
    frame = found.frame.sort("event_time_ms")
    assert frame["event_time_ms"].to_list() == [t.time_ms for t in wanted]
    assert frame["label"].to_list() == [t.label for t in wanted]  # verdict, else own label
    model = decide(np.array([t.score for t in wanted]), THRESHOLDS).tolist()
    assert frame["decision"].to_list() == model  # the model's own, not the rules' block
    newest = history(db, columns, start, end, limit=3)
    assert newest.truncated and newest.start_ms == wanted[-4].time_ms + 1
    assert sorted(newest.frame["event_time_ms"].to_list()) == [t.time_ms for t in wanted[-3:]]
    assert capped_start(db, start, end, len(wanted)) == start  # all of them fit
    assert history(db, columns, 0, 1, limit=10).frame.height == 0
    with pytest.raises(RuleError, match="amout"):
        columns_read([Rule("bad", "amout > 1", "review")], Schema.for_mode("pre_auth"))


def test_backtest_on_loaded_history(db: Database, store: RuleStore) -> None:
    start, end = default_range(NEWEST_MS)
    schema = Schema.for_mode("pre_auth")
    found = history(db, columns_read(RULES, schema), start, end, limit=1000)
    lists = store.lists_snapshot().lists
    result = backtest(found.frame, RULES, schema, lists=lists)
    rows = {r["rule_id"]: r for r in result.table.iter_rows(named=True)}
    in_range = [t for t in SEED if start <= t.time_ms < end]
    mules = [t for t in in_range if t.counterparty == MULE]
    assert rows["mules"]["hits"] == len(mules)
    labelled = [t for t in mules if t.label >= 0]
    assert rows["mules"]["precision"] == pytest.approx(
        sum(t.label for t in labelled) / len(labelled)
    )


def test_texts() -> None:
    a, b = RULES
    delta = set_delta([a, b], [a])
    assert delta_text(delta).splitlines()[0] == "remove big"
    assert delta_text([]) == "no rule changed"
    assert split_values(" M1\nM2, M1 ,,\n\u202eM3 ") == ["M1", "M2", "\u202eM3"]
    assert expires_at("never", 5) is None
    assert expires_at("7 days", 5) == 5 + 7 * DAY_MS
    assert set(EXPIRIES) >= {"never", "1 day", "30 days"}
    with pytest.raises(RuleError, match="unknown expiry"):
        expires_at("forever", 5)
    found = refusal(RuleError("unknown field 'amout'", text="amout > 1", pos=0, rule_id="bad"))
    assert found.headline == "rule 'bad': unknown field 'amout' at column 1"
    assert found.pointer == "  amout > 1\n  ^"
    assert refusal(RuleError("no author")).pointer is None


def test_history_text_reads_like_the_command_line(store: RuleStore) -> None:
    store.set_status("pre_auth", "big", "live", author="ana\u202e", comment="go live")
    text = history_text(store.history("pre_auth"))
    lines = text.splitlines()
    assert lines[0].startswith("v2  ") and lines[0].endswith("ana[U+202E]  status big")
    assert lines[1:3] == ["    # go live", "    status: shadow -> live"]
    assert "v1  " in text and "add mules" in text


def test_changes_are_signed_audited_and_refused_without_the_role(
    db: Database, store: RuleStore
) -> None:
    rule = Rule("night", "hour < 6", "review")
    said = change_rules(
        db, ANA, "rule added", "pre_auth night", lambda who: store.add("pre_auth", rule, author=who)
    )
    assert said.endswith("the pre_auth rule set is now version 2, by ana.")
    added = store.current("pre_auth")
    assert (added.version, added.author) == (2, "ana")
    assert next(r for r in added.rules if r.id == "night").author == "ana"
    entry = recent_audit(db, 1)[0]
    assert (entry.actor, entry.action, entry.target) == ("ana", "rule added", "pre_auth night")
    # an unchanged rule saves nothing and audits nothing
    same = change_rules(
        db,
        ANA,
        "rule edited",
        "pre_auth night",
        lambda who: store.edit("pre_auth", "night", author=who, expression="hour < 6"),
    )
    assert same.startswith("No change") and recent_audit(db, 1)[0] == entry
    # a viewer, a role claimed but not stored, and nobody: refused and audited, nothing saved
    for user in (User("vic", "viewer"), User("vic", "admin"), None):
        with pytest.raises(AccessDenied):
            change_rules(
                db,
                user,
                "rule removed",
                "pre_auth night",
                lambda who: store.remove("pre_auth", "night", author=who),
            )
    assert store.current("pre_auth").version == 2
    assert [e.action for e in recent_audit(db, 3)] == ["refused"] * 3
    # a refused rule: nothing saved
    with pytest.raises(RuleError, match="amout"):
        change_rules(
            db,
            ANA,
            "rule added",
            "pre_auth bad",
            lambda who: store.add("pre_auth", Rule("bad", "amout > 1", "review"), author=who),
        )
    assert store.current("pre_auth").version == 2


def test_list_changes_are_signed_and_need_the_role(db: Database, store: RuleStore) -> None:
    assert create_list(db, store, ANA, "trusted", "account", "").endswith("by ana.")
    expiry = NEWEST_MS * 2
    add_list_entries(db, store, ANA, "trusted", ["C1", "C2"], expires_at_ms=expiry, reason="ok")
    entries = store.entries("trusted")
    assert [(e.value, e.added_by, e.expires_at_ms) for e in entries] == [
        ("C1", "ana", expiry),
        ("C2", "ana", expiry),
    ]
    remove_list_entries(db, store, ANA, "trusted", ["C1"], "gone")
    assert [e.value for e in store.entries("trusted")] == ["C2"]
    with pytest.raises(AccessDenied):
        add_list_entries(
            db, store, User("vic", "viewer"), "trusted", ["C3"], expires_at_ms=None, reason=""
        )
    with pytest.raises(RuleError, match="nothing removed"):
        remove_list_entries(db, store, ANA, "trusted", ["C2", "C9"], "")
    assert [e.value for e in store.entries("trusted")] == ["C2"]
    actions = [e.action for e in recent_audit(db, 4)]
    assert actions == ["refused", "list entries removed", "list entries added", "list created"]
