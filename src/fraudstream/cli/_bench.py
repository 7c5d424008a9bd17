"""``fraudstream bench``: throughput, latency, per-stage cost and state size, reproducibly."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, nullcontext, redirect_stdout
from pathlib import Path
from typing import Any, cast

import numpy as np
import typer
from rich.table import Table

from fraudstream.bench import (
    BenchRun,
    bounded_state,
    live_latency,
    soak,
    stage_costs,
    state_bytes_per_account,
    sustained_throughput,
)
from fraudstream.bench._paired import ratio_interval
from fraudstream.bench._rate import rate_accuracy as measure_rate
from fraudstream.bench._rules import rules_run
from fraudstream.broker import EmbeddedBroker, free_port
from fraudstream.cli._app import app, console, load_settings
from fraudstream.cli._bench_card import card_bundle, card_state, print_card_state
from fraudstream.cli._train import ensure_model
from fraudstream.config import Settings
from fraudstream.model import Bundle
from fraudstream.rules import Status
from fraudstream.sinks import open_store


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@app.command()
def bench(
    count: int = typer.Option(1_000_000, help="Transactions pre-filled for the sustained run."),
    rates: str = typer.Option("500,5000,20000", help="Live rates (tx/s), comma-separated."),
    duration: float = typer.Option(20.0, help="Seconds of each live run."),
    accounts: int = typer.Option(20_000, help="Accounts in the simulated stream."),
    state_accounts: int = typer.Option(1_000_000, help="Accounts for the state-size run."),
    store_url: str | None = typer.Option(None, help="Store to write (default: a temp SQLite)."),
    postgres_url: str | None = typer.Option(
        None,
        envvar="FRAUDSTREAM_BENCH_POSTGRES_URL",
        help="Also measure the PostgreSQL store (in a scratch schema, dropped after).",
    ),
    bounded_hours: int = typer.Option(
        6, help="Event-time hours of the bounded-state run (30 min TTL vs none); 0 skips it."
    ),
    soak_minutes: float = typer.Option(
        5.0, help="Minutes of the soak run: the simulator at --soak-rate, all scored?; 0 skips."
    ),
    soak_rate: float = typer.Option(500.0, help="Rate of the soak run (tx/s)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    fmt: str = typer.Option(
        "paysim",
        "--format",
        help="paysim (the bank's) or card (the handbook's records, a card bundle: the newest, "
        "else one trained and kept as a candidate; instead of the in-process stages and PaySim "
        "state, the card state per customer and terminal, up to 20,000 of --state-accounts "
        "customers over 90 days).",
    ),
    rate_accuracy: str = typer.Option(
        "", help="Only measure `simulate --rate` at these rates (e.g. 500,5000) for --duration s."
    ),
    labels: bool = typer.Option(
        True,
        "--labels/--no-labels",
        help="Also run with labels flowing (one per --label-every transactions, on the run's "
        "own label topic, read by the detector): the sustained run, and live at --label-rates.",
    ),
    label_every: int = typer.Option(100, min=1, help="One label per this many tx (100: 1 %)."),
    label_rates: str = typer.Option(
        "500,5000",
        help="Live rates (tx/s) run without and with labels (--pairs each), comma-separated.",
    ),
    pairs: int = typer.Option(
        2,
        min=1,
        help="Sustained runs, and live runs at each --label-rates rate, without and with labels, "
        "alternated (without, with, with, without, ...): the medians are compared.",
    ),
    api: bool = typer.Option(
        False,
        "--api",
        help="Only measure `fraudstream serve`: POST /v1/decisions at --api-rates for --duration "
        "s each with `fraudstream detect` running (docs/api.md).",
    ),
    api_rates: str = typer.Option("200,1000", help="Decisions per second of --api runs."),
    rules: int = typer.Option(
        0,
        "--rules",
        min=0,
        max=50,
        help="Also the sustained run with this many live rules (a fraud team's mix over fields, "
        "features, score and lists) against the same run without rules, --pairs each, "
        "alternated; 0 skips it.",
    ),
    rules_status: str = typer.Option(
        "live",
        "--rules-status",
        help="live (the rules act: their alerts are explained and stored) or shadow (evaluated "
        "and recorded, never acting: what a team trialling them pays).",
    ),
) -> None:
    """Measure the real detector on the embedded broker (or the configured cluster)."""
    settings = load_settings()
    _check_options(fmt, rules, rules_status)
    if rate_accuracy:
        _rate_accuracy(settings, rate_accuracy, duration, accounts, as_json)
        return
    if api:
        _api(settings, api_rates, duration, accounts, as_json)
        return
    results: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        # the runs' state snapshots are the run's, never the user's data directory
        detect = settings.detect.model_copy(update={"snapshot_dir": tmp / "state"})
        settings = settings.model_copy(update={"detect": detect})
        bootstrap = settings.kafka.bootstrap_servers
        if not bootstrap:
            broker = EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log")
            bootstrap = stack.enter_context(broker).bootstrap_servers
        bundle = _bench_bundle(settings, fmt, as_json)
        results["format"] = fmt
        run = BenchRun(
            client=settings.kafka.client_config(bootstrap),
            prefix=f"bench-{uuid.uuid4().hex[:6]}-",
            store_url=store_url or f"sqlite:///{tmp / 'bench-{run}.db'}",
            bundle=bundle,
            settings=settings,
            partitions=settings.kafka.partitions,
            label_every=label_every,
        )
        results["model_version"] = bundle.version
        results["store"] = "sqlite" if run.store_url.startswith("sqlite") else "postgresql"
        _sustained(results, run, count, accounts, pairs if labels else 0)
        if rules:
            _rules_pairs(results, run, count, accounts, pairs, rules, cast(Status, rules_status))
        results["latency_ms"] = {}
        plain = [float(r) for r in rates.split(",") if r.strip()]
        labelled = [float(r) for r in label_rates.split(",") if r.strip()] if labels else []
        for rate in dict.fromkeys(plain + labelled):
            if rate in labelled:  # without and with labels, --pairs times, alternated
                _live_pairs(results, run, rate, duration, accounts, pairs)
                continue
            with console.status(f"live at {rate:,.0f} tx/s for {duration:.0f} s…"):
                live = live_latency(run, rate, duration, accounts=accounts)
            results["latency_ms"][str(int(rate))] = live
        if soak_minutes > 0:
            with console.status(f"soak: {soak_minutes:.0f} min at {soak_rate:,.0f} tx/s…"):
                results["soak"] = soak(
                    run, soak_rate, soak_minutes, accounts=accounts, report_dir=str(tmp)
                )
    if fmt == "card":  # the card engine's state; the in-process parts below are PaySim's
        card_state(results, customers=state_accounts, partitions=run.partitions)
        results["peak_rss_mb"] = _peak_rss_mb()
        _report(results, as_json)
        return
    with console.status("per-stage cost…"):
        results["stages_us_per_tx"] = stage_costs(bundle, accounts=accounts)
    stores = {"sqlite": results["stages_us_per_tx"]["store_sqlite"]}
    if postgres_url:
        with console.status("PostgreSQL store…"):
            stores["postgresql"] = _postgres_store_us(bundle, postgres_url, accounts)
    results["store_rows_per_s"] = {name: 1e6 / us for name, us in stores.items()}
    with console.status(f"state size with {state_accounts:,} accounts…"):
        state = state_bytes_per_account(accounts=state_accounts, rows=2 * state_accounts)
    results["state"] = state
    results["state_bytes_per_account"] = state["state_bytes_per_account"]
    if bounded_hours > 0:
        with console.status(f"bounded state: {bounded_hours} h of event time, TTL 30 min / none…"):
            results["bounded_state"] = bounded_state(hours=bounded_hours)
    results["peak_rss_mb"] = _peak_rss_mb()
    _report(results, as_json)


def _bench_bundle(settings: Settings, fmt: str, as_json: bool) -> Bundle:
    """The bundle the runs score with: a card one for ``--format card`` (its notices on
    stderr), else the promoted one, a first one trained if there is none (its report on stderr
    with ``--json``: stdout is the JSON alone)."""
    if fmt == "card":
        return card_bundle(settings)
    with redirect_stdout(sys.stderr) if as_json else nullcontext():
        return Bundle.load(ensure_model(settings))


def _report(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(results))
    elif results.get("format") == "card":
        _print_runs(results)
        print_card_state(results)
    else:
        _print(results)


def _sustained(
    results: dict[str, Any], run: BenchRun, count: int, accounts: int, pairs: int
) -> None:
    """The sustained run; with ``pairs``, that many without labels and with, alternated, the
    median run of each reported (``sustained``, ``sustained_labels``) and their ratio."""
    if not pairs:
        with console.status(f"sustained: {count:,} transactions pre-filled, then detected…"):
            results["sustained"] = sustained_throughput(run, count, accounts=accounts)
        results["throughput_tx_per_s"] = results["sustained"]["throughput_tx_per_s"]
        return

    def measure(with_labels: bool, i: int) -> dict[str, Any]:
        what = "with labels" if with_labels else "without labels"
        with console.status(f"sustained {i}/{2 * pairs}: {count:,} tx, {what}…"):
            name = ("labelled-" if with_labels else "") + f"sustained{i}"
            return sustained_throughput(
                run, count, accounts=accounts, labels=with_labels, name=name
            )

    runs = _paired(pairs, measure)
    tx_per_s = {k: [float(r["throughput_tx_per_s"]) for r in v] for k, v in runs.items()}
    results["sustained"] = _median_run(runs[False], "throughput_tx_per_s")
    results["throughput_tx_per_s"] = float(np.median(tx_per_s[False]))
    results["sustained_labels"] = _median_run(runs[True], "throughput_tx_per_s")
    results["labels"] = {
        "every": run.label_every,
        "throughput_tx_per_s": {"without": tx_per_s[False], "with": tx_per_s[True]},
        # median with / median without, runs of the same bench alternated
        "throughput_ratio": float(np.median(tx_per_s[True]) / np.median(tx_per_s[False])),
        "latency_ms": {},
        "latency_p99_ms": {},
        "latency_p99_ratio": {},
    }


def _check_options(fmt: str, rules: int, rules_status: str) -> None:
    if fmt not in ("paysim", "card") or (fmt == "card" and rules):
        raise typer.BadParameter("paysim, or card without --rules", param_hint="--format")
    if rules_status not in ("live", "shadow"):
        raise typer.BadParameter("live or shadow", param_hint="--rules-status")


def _rules_pairs(
    results: dict[str, Any],
    run: BenchRun,
    count: int,
    accounts: int,
    pairs: int,
    rules: int,
    status: Status = "live",
) -> None:
    """Sustained runs without rules and with ``rules`` rules in ``status``, ``pairs`` times
    each, alternated: every throughput, the medians' ratio and the rules' share of the thread's
    time."""

    def measure(with_rules: bool, i: int) -> dict[str, Any]:
        what = f"with {rules} {status} rules" if with_rules else "without rules"
        with console.status(f"sustained {i}/{2 * pairs}: {count:,} tx, {what}…"):
            name = f"rules{rules}{status}-{i}" if with_rules else f"norules-{i}"
            return rules_run(
                run,
                count,
                accounts=accounts,
                rules=rules if with_rules else 0,
                name=name,
                status=status,
            )

    runs = _paired(pairs, measure)
    tput = {
        key: [r["throughput_tx_per_s"] for r in runs[w]]
        for key, w in (("without", False), ("with", True))
    }
    with_rules = _median_run(runs[True], "throughput_tx_per_s")
    without = _median_run(runs[False], "throughput_tx_per_s")
    results["rules"] = {
        "status": status,
        "live": rules if status == "live" else 0,
        "shadow": rules if status == "shadow" else 0,
        "throughput_tx_per_s": tput,
        "ratio": with_rules["throughput_tx_per_s"] / without["throughput_tx_per_s"],
        # run i with and run i without were made next to each other (see _paired)
        "pair_ratios": [w / o for w, o in zip(tput["with"], tput["without"], strict=True)],
        "ratio_interval_90": list(ratio_interval(tput["without"], tput["with"])),
        "fired_share": with_rules["rules"]["fired_share"],
        "rules_us_per_tx": with_rules["consuming_thread_us_per_tx"].get("rules", 0.0),
        "alert_share": with_rules["rules"]["alert_share"],
        "alert_share_without": without["rules"]["alert_share"],
        "median_runs": {"without": without, "with": with_rules},
    }


def _live_pairs(
    results: dict[str, Any], run: BenchRun, rate: float, duration: float, accounts: int, pairs: int
) -> None:
    """Live runs at ``rate`` without and with labels, ``pairs`` times, alternated: the run of
    median p99 of each reported (``latency_ms``, ``labels.latency_ms``), every p99 and the
    ratio of their medians."""

    def measure(with_labels: bool, i: int) -> dict[str, Any]:
        what = "with labels" if with_labels else "without labels"
        with console.status(
            f"live {i}/{2 * pairs} at {rate:,.0f} tx/s for {duration:.0f} s, {what}…"
        ):
            name = ("labelled-" if with_labels else "") + f"live{int(rate)}-{i}"
            return live_latency(
                run, rate, duration, accounts=accounts, labels=with_labels, name=name
            )

    runs = _paired(pairs, measure)
    key = str(int(rate))
    p99 = {k: [float(r["p99"]) for r in v] for k, v in runs.items()}
    results["latency_ms"][key] = _median_run(runs[False], "p99")
    lab = results["labels"]
    lab["latency_ms"][key] = _median_run(runs[True], "p99")
    lab["latency_p99_ms"][key] = {"without": p99[False], "with": p99[True]}
    lab["latency_p99_ratio"][key] = float(np.median(p99[True]) / np.median(p99[False]))


def _paired(
    pairs: int, measure: Callable[[bool, int], dict[str, Any]]
) -> dict[bool, list[dict[str, Any]]]:
    """``measure(with_labels, run number)`` ``pairs`` times each way, alternated: without,
    with, with, without, ... (a drift of the machine favours neither)."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    order = [w for k in range(pairs) for w in ((False, True) if k % 2 == 0 else (True, False))]
    for i, with_labels in enumerate(order):
        runs[with_labels].append(measure(with_labels, i + 1))
    return runs


def _median_run(runs: list[dict[str, Any]], figure: str) -> dict[str, Any]:
    """The run of median ``figure`` (the lower middle one of an even count)."""
    ranked = sorted(runs, key=lambda r: float(r[figure]))
    return ranked[(len(ranked) - 1) // 2]


def _postgres_store_us(bundle: Bundle, url: str, accounts: int) -> float:
    """µs per enriched transaction written to PostgreSQL, in a scratch schema."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        costs = stage_costs(
            bundle, store=open_store(url, schema=schema), store_label="pg", accounts=accounts
        )
        return costs["store_pg"]
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _print_runs(r: dict[str, Any]) -> None:
    """The end-to-end runs: sustained, with labels or rules, live, soak."""
    s = r["sustained"]
    n_runs = len(r["labels"]["throughput_tx_per_s"]["without"]) if "labels" in r else 1
    median = f"median of {n_runs} runs without labels; the lower-middle one: " if n_runs > 1 else ""
    console.print(
        f"sustained: [bold]{r['throughput_tx_per_s']:,.0f} tx/s[/] end to end ({median}"
        f"{s['transactions']:,.0f} tx in {s['seconds']:.1f} s, "
        f"mean batch {s['mean_batch']:,.0f}; pre-fill {s['prefill_tx_per_s']:,.0f} tx/s), "
        f"store {r['store']}"
    )
    for label, key in (
        ("consuming thread", "consuming_thread_us_per_tx"),
        ("output thread", "output_thread_us_per_tx"),
    ):
        parts = ", ".join(f"{k} {v:.2f}" for k, v in s[key].items())
        console.print(f"  {label}, µs per transaction during that run: {parts}")
    console.print(f"  batches per store commit: {s['mean_batches_per_commit']:.2f}")
    if "labels" in r:
        _print_labels(r)
    if "rules" in r:
        _print_rules(r["rules"])
    table = Table(title="event-to-decision latency (ms), live")
    columns = ("rate tx/s", "labels", "scored", "p50", "p95", "p99", "max", "p99 after 5 s")
    for col in (*columns, "p99 to poll", "p99 in detector", "mean batch"):
        table.add_column(col, justify="right")
    with_labels = r.get("labels", {}).get("latency_ms", {})
    every = r.get("labels", {}).get("every", 0)
    share = f"{100 / every:g} %" if every else ""
    for rate in dict.fromkeys([*r["latency_ms"], *with_labels]):
        runs = [("none", r["latency_ms"].get(rate)), (share, with_labels.get(rate))]
        for labelled, one in runs:
            if one is None:
                continue
            keys = ("p50", "p95", "p99", "max", "p99_after_5s", "to_poll_p99", "in_detector_p99")
            cells = [f"{one.get(k, float('nan')):.1f}" for k in keys]
            scored = f"{one['transactions']:,.0f}"
            table.add_row(rate, labelled, scored, *cells, f"{one['mean_batch']:.0f}")
    console.print(table)
    for rate, v in with_labels.items():
        p99 = r["labels"]["latency_p99_ms"][rate]
        listed = "; ".join(
            f"{name}: " + ", ".join(f"{x:.1f}" for x in p99[name]) for name in ("without", "with")
        )
        console.print(
            f"  live at {rate} tx/s, p99 with labels / without (medians of the runs): "
            f"[bold]{r['labels']['latency_p99_ratio'][rate]:.2f}[/] ({listed} ms); table: the "
            "runs of median p99"
        )
        console.print(f"  live at {rate} tx/s with labels: " + _label_line(v["labels"]))
    if "soak" in r:
        _print_soak(r["soak"])


def _print(r: dict[str, Any]) -> None:
    _print_runs(r)
    stages = Table(title="hot path, µs per transaction (in-process)")
    stages.add_column("stage")
    stages.add_column("µs/tx", justify="right")
    for name, us in r["stages_us_per_tx"].items():
        stages.add_row(name, f"{us:.2f}")
    stages.add_row("total", f"{sum(r['stages_us_per_tx'].values()):.2f}")
    console.print(stages)
    rows = ", ".join(f"{k} {v:,.0f}" for k, v in r["store_rows_per_s"].items())
    console.print(f"store, enriched rows/s (every transaction + alerts, commit per batch): {rows}")
    st = r["state"]
    console.print(
        f"state: {r['state_bytes_per_account']:,.0f} bytes per account "
        f"({st['state_bytes_per_entity']:,.0f} per entity, {st['entities']:,.0f} entities); "
        f"peak RSS {r['peak_rss_mb']:,.0f} MB"
    )
    if "bounded_state" in r:
        b = r["bounded_state"]
        console.print(
            "entities held per event-time hour, 30 min TTL: "
            + ", ".join(f"{v:,.0f}" for v in b["entities_with_ttl"])
            + "; without eviction: "
            + ", ".join(f"{v:,.0f}" for v in b["entities_without"])
        )


def _print_rules(rules: dict[str, Any]) -> None:
    listed = {
        k: ", ".join(f"{v:,.0f}" for v in vs) for k, vs in rules["throughput_tx_per_s"].items()
    }
    low, high = rules["ratio_interval_90"]
    console.print(
        f"  sustained with {rules['live'] + rules['shadow']} {rules['status']} rules / without "
        "(medians): "
        f"[bold]{rules['ratio']:.1%}[/], 90 % bootstrap interval over the pairs "
        f"{low:.1%}-{high:.1%} (tx/s with: {listed['with']}; without: "
        f"{listed['without']}); rules {rules['rules_us_per_tx']:.2f} µs/tx on the consuming "
        f"thread, {rules['fired_share']:.1%} of rows fired a rule, "
        f"{rules['alert_share']:.1%} alerted ({rules['alert_share_without']:.1%} without)"
    )


def _print_labels(r: dict[str, Any]) -> None:
    """The sustained runs with and without labels, and what the label channel cost."""
    lab = r["labels"]
    runs = lab["throughput_tx_per_s"]
    listed = "; ".join(
        f"{name}: " + ", ".join(f"{v:,.0f}" for v in runs[name]) for name in ("without", "with")
    )
    console.print(
        f"sustained with labels (one per {lab['every']} tx): median "
        f"[bold]{float(np.median(runs['with'])):,.0f} tx/s[/] = "
        f"[bold]{lab['throughput_ratio']:.3f}[/] × without ({listed} tx/s)"
    )
    console.print("  " + _label_line(r["sustained_labels"]["labels"]))


def _label_line(v: dict[str, float]) -> str:
    return (
        f"labels produced {v['produced']:,.0f} ({v['share_of_transactions']:.2%} of tx; "
        f"{v['fraud_verdicts']:,.0f} fraud, {v['contradictions']:,.0f} contradicting), "
        f"read {v['read']:,.0f}, applied {v['applied']:,.0f}; per batch: read to the end in "
        f"{v['sync_ms_per_batch']:.2f} ms (LabelStats.sync_s / batches; longest "
        f"{v['sync_max_ms']:.1f} ms), labels stage "
        f"{v['stage_ms_per_batch']:.2f} ms; µs per tx: labels stage {v['stage_us_per_tx']:.2f}, "
        f"the bench's label producer {v['feed_us_per_tx']:.2f}; late batches "
        f"{v['late_batches']:,.0f}"
    )


def _print_soak(k: dict[str, Any]) -> None:
    verdict = "all" if k["scored"] >= k["produced"] >= 0 else "[bold red]NOT all[/]"
    console.print(
        f"soak, {k['minutes']:.0f} min at {k['rate_tx_per_s']:,.0f} tx/s: produced "
        f"{k['produced']:,}, scored {k['scored']:,} ({verdict}); stalls {k['stalls']}, "
        f"largest lag {k['max_lag']:,}"
    )
    minutes = ", ".join(f"{m['minute']}: {m['p50']:.0f}/{m['p99']:.0f}" for m in k["per_minute"])
    console.print(f"  latency p50/p99 ms by minute (producer batching included): {minutes}")


def _rate_accuracy(
    settings: Settings, rates: str, duration: float, accounts: int, as_json: bool
) -> None:
    """``simulate --rate`` in its own process, counted from the broker (bench/_rate.py)."""
    results = []
    with ExitStack() as stack:
        client = settings.kafka.client_config(_bootstrap(settings, stack))
        for rate in (float(r) for r in rates.split(",") if r.strip()):
            with console.status(f"simulate --rate {rate:,.0f} for {duration:.0f} s…"):
                topic = f"bench-rate-{uuid.uuid4().hex[:6]}"
                results.append(measure_rate(client, rate, duration, topic=topic, accounts=accounts))
    if as_json:
        console.print_json(json.dumps(results))
        return
    for r in results:
        console.print(
            f"target {r['target_tx_per_s']:,.0f} tx/s: [bold]{r['achieved_tx_per_s']:,.1f}[/] "
            f"tx/s over {r['duration_s']:.0f} s ({r['error_pct']:+.2f} %), "
            f"{r['messages']:,} messages, per second {r['per_second_min']:,}-"
            f"{r['per_second_max']:,}, timestamps: {r['timestamps']}"
        )


def _bootstrap(settings: Settings, stack: ExitStack) -> str:
    """The configured cluster, else an embedded broker on a free port (stopped with ``stack``)."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    log_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "broker.log"
    broker = EmbeddedBroker(port=free_port(), log_path=log_path)
    return str(stack.enter_context(broker).bootstrap_servers)


def _api(settings: Settings, rates: str, duration: float, accounts: int, as_json: bool) -> None:
    """``fraudstream serve`` and ``detect`` as processes, driven at each rate (bench/_api.py)."""
    from fraudstream.bench._api import api_bench

    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        ensure_model(settings)  # the promoted bundle both processes load
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {
            "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "FRAUDSTREAM_MODELS_DIR": str(Path(settings.models_dir).resolve()),
            "FRAUDSTREAM_KAFKA__PARTITIONS": str(settings.kafka.partitions),
        }
        per_s = [float(r) for r in rates.split(",") if r.strip()]
        with console.status(f"decision API at {rates} decisions/s, {duration:.0f} s each…"):
            results = api_bench(
                env,
                settings.kafka.client_config(bootstrap),
                work,
                rates=per_s,
                duration_s=duration,
                accounts=accounts,
            )
    if as_json:
        console.print_json(json.dumps(results))
        return
    console.print("decision API, POST /v1/decisions with the detector running:")
    for rate, r in results["rates"].items():
        once = r["stored"] == r["distinct_transactions"] == r["produced"]
        console.print(
            f"  {rate}/s: {r['requests']:,} requests, latency ms p50 {r['p50_ms']:.1f} / p95 "
            f"{r['p95_ms']:.1f} / [bold]p99 {r['p99_ms']:.1f}[/] / max {r['max_ms']:.1f}; "
            f"errors {r['errors']:,}, fallbacks {r['fallbacks']:,}; retries answered alike "
            f"{r['retries_checked'] - r['retry_mismatches']}/{r['retries_checked']}; stored "
            f"{r['stored']:,}, produced {r['produced']:,} of {r['distinct_transactions']:,} "
            + ("(each once)" if once else "[bold red](NOT each once)[/]")
            + "; CPU ms per request: "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_request"].items())
            + f"; the stream's part (produce to decision read) p50 ≤ "
            f"{r['decision_wait_ms']['p50_at_most']:.0f} ms, p99 ≤ "
            f"{r['decision_wait_ms']['p99_at_most']:.0f} ms",
            highlight=False,
        )
    console.print(f"settings: {results['settings']}; warm-up {results['warm_up_s']:.1f} s")
