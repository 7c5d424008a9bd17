"""``fraudstream bench --rules N``: the sustained run with N live rules against the same run
without any, alternated like the labels' pairs (docs/benchmarks.md, "Rules").

The rules are a fraud team's mix (allow, block and review over the transaction's fields, the
features, the model's score and two lists drawn from the simulated stream's accounts); they are
saved in the run's own store before its detector starts, which loads them as it would in service.
"""

from __future__ import annotations

from typing import Any

from fraudstream.bench._kafka import BenchRun, sustained_throughput
from fraudstream.dashboard import Database
from fraudstream.rules import Action, Rule, Status
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import RuleStore

__all__ = ["fifty_rules", "rules_run", "rule_lists"]

_AUTHOR = "bench"


def fifty_rules(status: Status = "live") -> list[Rule]:
    """50 rules of the shapes a fraud team writes, all in ``status``."""
    exprs: list[tuple[str, Action]] = [
        ('account in list("trusted")', "allow"),
        ('counterparty in list("trusted") and amount < 1_000', "allow"),
        ("score < 0.001 and amount < 50", "allow"),
        ('type == "PAYMENT" and amount < 20 and not new_counterparty_for_account', "allow"),
        ('type == "CASH_IN" and score < 0.01', "allow"),
        ('counterparty in list("mules")', "block"),
        ('account in list("mules")', "block"),
        ('nameDest in list("mules") and type in ("TRANSFER", "CASH_OUT")', "block"),
        ("score > 0.97 and amount > 1_000", "block"),
        ('type == "TRANSFER" and drains_balance and amount > 1_000_000', "block"),
        ("confirmed_frauds_to_counterparty_30d >= 2", "block"),
        ("counterparty_fraud_share_30d > 0.5 and amount > 500", "block"),
        ("confirmed_frauds_by_account_30d > 0 and score > 0.5", "block"),
        ('type == "CASH_OUT" and seconds_since_account_received < 60 and drains_balance', "block"),
        ("amount > 5_000_000", "block"),
    ]
    for i, limit in enumerate((10_000, 50_000, 200_000, 500_000, 1_000_000)):
        exprs.append((f'type == "TRANSFER" and amount > {limit:_} and score > 0.{5 + i}', "block"))
    for kind, limit, seconds in [
        ("TRANSFER", 2_000_000, 60),
        ("CASH_OUT", 1_600_000, 120),
        ("PAYMENT", 240_000, 300),
        ("DEBIT", 8_000, 600),
        ("TRANSFER", 4_000_000, 900),
        ("CASH_OUT", 4_800_000, 1_200),
        ("PAYMENT", 100_000, 1_800),
        ("DEBIT", 16_000, 3_600),
    ]:
        exprs.append(
            (
                f'type == "{kind}" and amount > {limit:_} '
                f"and seconds_since_last_by_account < {seconds:_}",
                "review",
            )
        )
    exprs += [
        ("score > 0.5 and amount > 500_000", "review"),
        ("amount / (oldbalanceOrg + 1) > 0.95 and amount > 2_000_000", "review"),
        ("tx_count_by_account_1h >= 120", "review"),
        ("amount_sum_by_account_1h > 40_000_000", "review"),
        ("amount_vs_mean_by_account > 50 and amount > 500_000", "review"),
        ("distinct_senders_to_counterparty_1h >= 1_150", "review"),
        ("tx_count_to_counterparty_1h >= 1_200 and score > 0.2", "review"),
        ("hour in (1, 2, 3, 4) and amount > 20_000", "review"),
        ("new_counterparty_for_account and amount > 5_000_000", "review"),
        ("received_amount_ratio > 0.99 and seconds_since_account_received < 1", "review"),
        (
            'not (type in ("PAYMENT", "DEBIT")) and oldbalanceDest == 0 and amount > 300_000',
            "review",
        ),
        ("oldbalanceOrg == 0 and amount > 2_000_000", "review"),
        ("log_amount > 16 or amount_to_old_balance_orig > 1_000_000", "review"),
        ("score > 0.5 and (hour < 6 or hour > 22)", "review"),
        ("old_balance_dest_missing and amount > 10_000", "review"),
        ("confirmed_frauds_to_counterparty_7d > 0", "review"),
        ("confirmed_frauds_to_account_30d > 0 and amount > 1_000", "review"),
        ('type == "DEBIT" and amount > 10_000 and hour >= 20', "review"),
        ("amount_vs_mean_by_account > 200", "review"),
        ('nameOrig not in list("trusted") and amount > 5_000_000', "review"),
        ("tx_count_by_account_1h >= 80 and amount_sum_by_account_1h > 20_000_000", "review"),
        ("old_balance_orig_missing and score > 0.4", "review"),
    ]
    assert len(exprs) == 50, len(exprs)
    return [Rule(f"r{i:02d}", e, a, status=status) for i, (e, a) in enumerate(exprs)]


def rule_lists(accounts: int, *, seed: int = 1) -> dict[str, list[str]]:
    """A 200-entry ``mules`` list (20 accounts of the stream :func:`~fraudstream.bench.prefill`
    simulates with ``accounts`` and ``seed``, 180 others) and a 300-entry ``trusted`` list of
    the stream's accounts."""
    sample = PaySimSimulator(accounts=accounts, seed=seed).next_batch(20_000)
    names = sorted({r.nameOrig for r in sample} | {r.nameDest for r in sample})
    step = max(1, len(names) // 320)
    picked = names[::step][:320]
    # known mules are few among the live accounts; most entries name accounts not seen here
    mules = picked[:20] + [f"C_MULE_{i:03d}" for i in range(180)]
    return {"mules": mules, "trusted": picked[20:]}


def install(url: str, mode: str, rules: list[Rule], lists: dict[str, list[str]]) -> int:
    """Save ``rules`` (replacing any) and ``lists`` in the store at ``url``; the version."""
    with RuleStore(url) as store:
        known = {info.name for info in store.lists()}
        for name, values in lists.items():
            if name not in known:
                store.create_list(name, kind="account", author=_AUTHOR)
            store.add_entries(name, values, author=_AUTHOR)
        version, _ = store.import_rules(mode, rules, author=_AUTHOR, replace_all=True)
    return version.version


def rules_run(
    run: BenchRun, count: int, *, accounts: int, rules: int, name: str, status: Status = "live"
) -> dict[str, Any]:
    """:func:`sustained_throughput` with the first ``rules`` of :func:`fifty_rules` in
    ``status`` (0: none) in the run's store, plus the version, the share of rows some rule fired
    on and the share of rows alerted."""
    mode = run.bundle.mode
    if rules and mode == "card":
        raise ValueError("the bench's rule mix reads PaySim fields: use a PaySim bundle")
    pack = fifty_rules(status)[:rules]
    url = run.store_url.replace("{run}", name)
    version = install(url, mode, pack, rule_lists(accounts) if pack else {})
    out = sustained_throughput(run, count, accounts=accounts, name=name)
    db = Database(url)
    try:
        column = "rules_fired" if status == "live" else "rules_shadow"
        fired = db.one(f"SELECT count(*) FROM transactions_enriched WHERE {column} IS NOT NULL")
        alerts = db.one("SELECT count(*) FROM fraud_alerts")
    finally:
        db.close()
    rows = max(out["transactions"], 1.0)
    out["rules"] = {
        "status": status,
        "rules": len(pack),
        "version": version,
        "fired_share": (fired[0] if fired else 0) / rows,
        "alert_share": (alerts[0] if alerts else 0) / rows,
    }
    return out
