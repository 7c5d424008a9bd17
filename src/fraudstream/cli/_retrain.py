"""``fraudstream retrain``: train a challenger from the store, shadow it, promote it through a gate.

One cycle (:func:`retrain_cycle`): if a challenger is in shadow, the gate judges its shadow
record (promote, reject, or wait for more fraud verdicts); if none is (left), a new challenger
is trained on the store's recent transactions and arrived verdicts, compared with the champion on
the latest labelled window and registered for shadow scoring (``promotion.json``'s
``challenger``, which ``detect`` loads). Every step is a row of ``model_events``. ``--every``
repeats the cycle until SIGTERM; a failing cycle is logged and the next one runs on time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fraudstream.cli._app import app, console, fail, load_settings, stop_event
from fraudstream.cli._lists import parse_ttl_ms
from fraudstream.errors import FraudstreamError, ModelError
from fraudstream.model._bundle import Bundle
from fraudstream.model._registry import (
    challenger_version,
    promote,
    promoted_version,
    set_challenger,
)
from fraudstream.model._retrain import GateResult, RetrainPolicy, gate, train_challenger
from fraudstream.sinks._model_events import ModelEvent, record_model_event
from fraudstream.sinks._retrain_rows import latest_event_ms, shadow_sample, stored_history
from fraudstream.sinks._sqlconn import SqlConnection
from fraudstream.sinks._store import open_store

__all__ = ["retrain", "retrain_cycle", "run_every"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Cycle:
    """What one cycle works with: the store, the models directory, the policy."""

    db: SqlConnection
    models_dir: Path
    policy: RetrainPolicy
    as_of_ms: int
    mlflow_uri: str | None
    events: list[ModelEvent] = dataclasses.field(default_factory=list)

    def record(
        self, version: str, event: str, champion: str | None, detail: dict[str, Any]
    ) -> None:
        self.events.append(
            record_model_event(self.db, version, event, champion=champion, detail=detail)
        )


def retrain_cycle(
    store_url: str,
    models_dir: Path,
    policy: RetrainPolicy,
    *,
    pg_schema: str | None = None,
    check_only: bool = False,
    as_of_ms: int | None = None,
    mlflow_uri: str | None = None,
) -> list[ModelEvent]:
    """One retrain cycle (see the module's notes); the steps it recorded, in order.

    ``as_of_ms``: "now" in event time (default: the latest stored event time). ``check_only``:
    judge the challenger in shadow, never train one.
    """
    db = SqlConnection(store_url, schema=pg_schema)
    db.open()
    try:
        now = as_of_ms if as_of_ms is not None else latest_event_ms(db)
        if now is None:
            raise ModelError(f"the store {store_url} holds no transaction to retrain on")
        cycle = _Cycle(db, Path(models_dir), policy, now, mlflow_uri)
        champion = promoted_version(cycle.models_dir)
        if champion is None:
            raise ModelError(f"no promoted bundle under {models_dir}: promote a champion first")
        challenger = challenger_version(cycle.models_dir)
        if challenger is not None:
            _judge(cycle, champion, challenger)
        if not check_only and challenger_version(cycle.models_dir) is None:
            _train(cycle, promoted_version(cycle.models_dir) or champion, store_url, pg_schema)
        return cycle.events
    finally:
        db.close()


def _judge(cycle: _Cycle, champion: str, challenger: str) -> GateResult:
    """The gate on ``challenger``'s shadow record: promote, reject (pointer cleared) or wait."""
    bundles = (Bundle.load(cycle.models_dir / champion), Bundle.load(cycle.models_dir / challenger))
    s = shadow_sample(cycle.db, challenger, champion)
    shadow_ms = cycle.as_of_ms - int(s.event_time_ms[0]) if len(s.event_time_ms) else 0
    result = gate(
        (s.champion_score, s.challenger_score),
        s.verdict,
        s.event_time_ms,
        s.amount,
        bundles,
        cycle.policy,
        as_of_ms=cycle.as_of_ms,
        shadow_ms=shadow_ms,
    )
    detail = {**dataclasses.asdict(result), "shadow_ms": shadow_ms, "as_of_ms": cycle.as_of_ms}
    if result.decision == "promote":
        promote(cycle.models_dir, challenger)
        cycle.record(challenger, "promoted", champion, detail)
    elif result.decision == "reject":
        set_challenger(cycle.models_dir, None)
        cycle.record(challenger, "rejected", champion, detail)
    else:
        cycle.record(challenger, "shadow_waiting", champion, detail)
    if cycle.mlflow_uri and result.decision != "wait":
        from fraudstream.model._retrain_tracking import track_transition

        event = "promoted" if result.decision == "promote" else "rejected"
        track_transition(cycle.mlflow_uri, challenger, event)
    return result


def _train(cycle: _Cycle, champion: str, store_url: str, pg_schema: str | None) -> Bundle:
    """Train, evaluate and register a challenger for shadow scoring."""
    policy = cycle.policy
    start_ms = cycle.as_of_ms - policy.lookback_ms
    history, labels = stored_history(cycle.db, start_ms, cycle.as_of_ms + 1)
    incumbent = Bundle.load(cycle.models_dir / champion)
    bundle, comparison = train_challenger(history, labels, incumbent, policy, cycle.as_of_ms)
    bundle.save(cycle.models_dir)
    _record_version(store_url, pg_schema, bundle)
    data = comparison.pop("data")
    cycle.record(bundle.version, "trained", champion, {**data, "from_ms": start_ms})
    cycle.record(bundle.version, "evaluated", champion, {**comparison, **data})
    set_challenger(cycle.models_dir, bundle.version)
    registered = None
    if cycle.mlflow_uri:
        from fraudstream.model._retrain_tracking import register_challenger

        registered = register_challenger(bundle, cycle.mlflow_uri)
    cycle.record(bundle.version, "shadow_started", champion, {"mlflow_version": registered})
    return bundle


def _record_version(store_url: str, pg_schema: str | None, bundle: Bundle) -> None:
    """The challenger in ``model_versions`` (as a detector records the bundles it runs)."""
    store = open_store(store_url, schema=pg_schema)
    store.open()
    try:
        store.record_model_version(bundle.version, json.dumps(bundle.metrics, default=str))
        store.flush()
    finally:
        store.close()


def run_every(
    cycle: Callable[[], object], every_s: float, stop: threading.Event, *, max_cycles: int = 0
) -> tuple[int, int]:
    """Run ``cycle`` now and every ``every_s`` seconds until ``stop`` is set (or ``max_cycles``
    have run, when > 0): ``(cycles run, cycles failed)``. A failing cycle is logged, not fatal."""
    runs = failures = 0
    while not stop.is_set():
        runs += 1
        try:
            cycle()
        except Exception:
            failures += 1
            log.exception("retrain cycle %d failed; the next one runs in %g s", runs, every_s)
        if max_cycles and runs >= max_cycles:
            break
        stop.wait(every_s)
    return runs, failures


def _ms(option: str, text: str) -> int:
    try:
        return parse_ttl_ms(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: write a positive number and a unit s, m, h, d or w", param_hint=option
        ) from None


@app.command()
def retrain(
    lookback: str = typer.Option("30d", help="History read from the store before now (30d, 36h)."),
    label_delay: str = typer.Option(
        "7d", help="Unlabelled transactions younger than this are excluded, older are genuine."
    ),
    eval_window: str = typer.Option(
        "2d",
        help="The window both models are compared on (not trained on), ending --label-delay "
        "before the latest stored transaction.",
    ),
    margin: float = typer.Option(
        0.01, help="AP the challenger must gain in shadow to be promoted."
    ),
    min_fraud_labels: int = typer.Option(
        30, help="Fraud verdicts among the shadow rows before the gate decides."
    ),
    max_shadow: str = typer.Option(
        "14d", help="A challenger still short of fraud verdicts after this long is rejected."
    ),
    promote_check: bool = typer.Option(
        False, "--promote-check", help="Only judge the challenger in shadow; train none."
    ),
    every: str | None = typer.Option(
        None, help="Repeat every interval (24h) until SIGTERM; a failing cycle is logged."
    ),
    mlflow_uri: str | None = typer.Option(
        None, help="Register challengers and their transitions in this MLflow registry."
    ),
    seed: int = typer.Option(0, help="Training seed."),
) -> None:
    """Train a challenger from the store's transactions and verdicts; promote it through a gate."""
    settings = load_settings()
    policy = RetrainPolicy(
        lookback_ms=_ms("--lookback", lookback),
        label_delay_ms=_ms("--label-delay", label_delay),
        eval_window_ms=_ms("--eval-window", eval_window),
        margin=margin,
        min_fraud_labels=min_fraud_labels,
        max_shadow_ms=_ms("--max-shadow", max_shadow),
        seed=seed,
    )

    def once() -> list[ModelEvent]:
        events = retrain_cycle(
            settings.store_url(),
            settings.models_dir,
            policy,
            pg_schema=settings.store.pg_schema,
            check_only=promote_check,
            mlflow_uri=mlflow_uri,
        )
        console.print(events_table(events, title="fraudstream retrain"))
        return events

    if every is None:
        try:
            once()
        except FraudstreamError as exc:
            raise fail(str(exc)) from exc
        return
    runs, failures = run_every(once, _ms("--every", every) / 1000, stop_event())
    console.print(f"retrain loop stopped after {runs} cycle(s), {failures} failed")


def events_table(events: list[ModelEvent], *, title: str) -> Table:
    """Model events as a table: time, version, step, champion then, the step's key figures."""
    table = Table(title=title)
    for column in ("at (UTC)", "version", "event", "champion", "detail"):
        table.add_column(column)
    for e in events:
        table.add_row(_utc(e.at_ms), e.version, e.event, e.champion or "", _detail(e.detail))
    return table


def _utc(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _detail(detail: dict[str, Any]) -> str:
    """The reason, the APs and the counts of a step, in one line."""
    parts = [str(detail["reason"])] if "reason" in detail else []
    for who in ("champion", "challenger"):
        ap = detail.get(who, {}).get("average_precision") if detail.get(who) else None
        if ap is not None:
            parts.append(f"{who} AP {ap:.4f}")
    for key in ("train_rows", "eval_fraud_labels", "fraud_labels", "excluded_young_unlabelled"):
        if key in detail:
            parts.append(f"{key.replace('_', ' ')} {detail[key]:,}")
    if detail.get("to"):
        parts.append(f"to {detail['to']}")
    return "; ".join(parts)
