"""``fraudstream rules``: the fraud team's rules in the store, versioned with an audit trail.

Every change saves a new version of the mode's rule set; a rule that does not validate is
refused with where the fault is (exit 2) and the version in force stays. See docs/rules.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import typer

from fraudstream.cli._app import app, load_settings
from fraudstream.cli._backtest import FileInput, file_history, parse_time, store_history
from fraudstream.cli._backtest_report import print_table, to_json, write_table
from fraudstream.cli._rulestore import (
    AUTHOR,
    COMMENT,
    MODE,
    STORE,
    author_of,
    opened,
    refuse,
    say,
    when,
)
from fraudstream.model import Costs
from fraudstream.rules import (
    ACTIONS,
    STATUSES,
    Action,
    Rule,
    RuleError,
    RuleSet,
    Schema,
    Status,
    backtest,
)
from fraudstream.rules._backtest import rule_columns, rule_lists
from fraudstream.rules._diff import RuleDelta, set_delta
from fraudstream.rules._pack import Pack, read_pack, starter_pack, write_pack
from fraudstream.sinks import RuleHits, RuleSetVersion, RuleStore, rule_hits
from fraudstream.sinks._rules_store import now_ms

__all__ = ["rules_app"]

rules_app = typer.Typer(
    help="Rules beside the model (allow, review, block): versioned, audited, validated.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")

_VERSION = typer.Option(None, "--version", help="A saved version [the one in force].")


def _saved(what: str, result: tuple[RuleSetVersion, list[RuleDelta]]) -> None:
    version, delta = result
    if not delta:
        say(f"no change: the {version.mode} rule set stays at version {version.version}")
        return
    say(f"{what}: the {version.mode} rule set is now version {version.version} ({version.author})")
    _print_delta(delta)


def _print_delta(delta: list[RuleDelta]) -> None:
    for d in delta:
        say(f"  {d.kind} {d.rule_id}")
        for line in d.diff.splitlines():
            say(f"    {line}")


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> None:
    if value is not None and value not in allowed:
        raise refuse(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


@rules_app.command("add")
def add(
    rule_id: str = typer.Argument(..., help="The rule's id (letters, digits, _ . : -)."),
    expression: str = typer.Argument(..., help="The condition, e.g. 'amount > 10_000'."),
    action: str = typer.Option(..., "--action", help="allow, review or block."),
    priority: int = typer.Option(100, help="Order among rules of one action (lower first)."),
    status: str = typer.Option("draft", help="draft, shadow, live or paused."),
    description: str = typer.Option("", help="What the rule is for."),
    mode: str = MODE,
    author: str | None = AUTHOR,
    comment: str = COMMENT,
    store_url: str | None = STORE,
) -> None:
    """Add a rule (a new version); refused with the fault's position if it does not validate."""
    _choice(action, ACTIONS, "action")
    _choice(status, STATUSES, "status")
    who = author_of(author)
    with opened(store_url) as store:
        rule = Rule(
            rule_id, expression, cast(Action, action), description, priority, cast(Status, status)
        )
        _saved(f"rule {rule_id} added", store.add(mode, rule, author=who, comment=comment))


@rules_app.command("edit")
def edit(
    rule_id: str = typer.Argument(..., help="The rule's id."),
    expression: str | None = typer.Option(None, help="A new condition."),
    action: str | None = typer.Option(None, help="allow, review or block."),
    priority: int | None = typer.Option(None, help="A new priority."),
    description: str | None = typer.Option(None, help="A new description."),
    mode: str = MODE,
    author: str | None = AUTHOR,
    comment: str = COMMENT,
    store_url: str | None = STORE,
) -> None:
    """Change a rule's condition, action, priority or description (a new version)."""
    _choice(action, ACTIONS, "action")
    if all(v is None for v in (expression, action, priority, description)):
        raise refuse("nothing to change: give --expression, --action, --priority or --description")
    who = author_of(author)
    with opened(store_url) as store:
        result = store.edit(
            mode,
            rule_id,
            author=who,
            comment=comment,
            expression=expression,
            action=action,
            priority=priority,
            description=description,
        )
        _saved(f"rule {rule_id} edited", result)


@rules_app.command("set-status")
def set_status(
    rule_id: str = typer.Argument(..., help="The rule's id."),
    status: str = typer.Argument(..., help="draft, shadow, live or paused."),
    mode: str = MODE,
    author: str | None = AUTHOR,
    comment: str = COMMENT,
    store_url: str | None = STORE,
) -> None:
    """Move a rule to draft, shadow (evaluated, never acting), live or paused."""
    _choice(status, STATUSES, "status")
    who = author_of(author)
    with opened(store_url) as store:
        result = store.set_status(mode, rule_id, cast(Status, status), author=who, comment=comment)
        _saved(f"rule {rule_id} {status}", result)


@rules_app.command("remove")
def remove(
    rule_id: str = typer.Argument(..., help="The rule's id."),
    mode: str = MODE,
    author: str | None = AUTHOR,
    comment: str = COMMENT,
    store_url: str | None = STORE,
) -> None:
    """Remove a rule (a new version; earlier versions keep it)."""
    who = author_of(author)
    with opened(store_url) as store:
        _saved(f"rule {rule_id} removed", store.remove(mode, rule_id, author=who, comment=comment))


@rules_app.command("list")
def list_(
    version: int | None = _VERSION,
    stats: bool = typer.Option(
        False,
        "--stats",
        help="Also how often each rule fired in the detector (shadow rules: would have), "
        "and its precision so far against the labels.",
    ),
    since_hours: float | None = typer.Option(
        None, "--since-hours", min=0, help="With --stats: only transactions this recent."
    ),
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """The rules of a version, in decision order: id, action, status, priority, condition."""
    with opened(store_url) as store:
        v = store.current(mode) if version is None else store.at_version(mode, version)
        since_ms = 0 if since_hours is None else now_ms() - int(since_hours * 3_600_000)
        hits = rule_hits(store, since_ms=since_ms) if stats else []
    if not v.rules:
        say(f"no rules in the {mode} rule set (version {v.version})")
        return
    say(f"{mode} rule set version {v.version}, saved {when(v.created_at_ms)} by {v.author}")
    width = max(len(r.id) for r in v.rules)
    for r in v.rules:
        say(f"{r.id:<{width}}  {r.action:<6}  {r.status:<6}  {r.priority:>5}  {r.expression}")
    if stats:
        _print_stats(v, hits, width)


def _print_stats(v: RuleSetVersion, hits: list[RuleHits], width: int) -> None:
    """Per rule of ``v``: stored hits as a live and as a shadow rule, verdicts, precision."""
    found = {(h.rule_id, h.shadow): h for h in hits}
    say("")
    say(f"{'rule':<{width}}  {'as':<6}  {'hits':>8}  {'labelled':>8}  {'frauds':>8}  precision")
    for r in v.rules:
        for shadow in (False, True):
            h = found.get((r.id, shadow))
            if h is None and (shadow != (r.status == "shadow")):
                continue  # only the role it has now, or any it had with hits
            h = h or RuleHits(r.id, shadow, 0, 0, 0)
            p = "-" if h.precision is None else f"{h.precision:.1%}"
            role = "shadow" if shadow else "live"
            say(f"{r.id:<{width}}  {role:<6}  {h.hits:>8}  {h.labelled:>8}  {h.frauds:>8}  {p}")


@rules_app.command("show")
def show(
    rule_id: str = typer.Argument(..., help="The rule's id."),
    version: int | None = _VERSION,
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """One rule's fields and its changes."""
    with opened(store_url) as store:
        v = store.current(mode) if version is None else store.at_version(mode, version)
        rule = next((r for r in v.rules if r.id == rule_id), None)
        if rule is None:
            raise RuleError(f"no rule {rule_id!r} in the {mode} rule set (version {v.version})")
        changes = store.history(mode, rule_id=rule_id)
    for name in ("id", "expression", "action", "status", "priority", "description", "author"):
        say(f"{name + ':':<12} {getattr(rule, name)}")
    say(f"changes ({len(changes)}):")
    for c in changes:
        say(f"  v{c.version}  {when(c.at_ms)}  {c.author}  {c.change}  {c.comment}".rstrip())


@rules_app.command("history")
def history(
    rule_id: str | None = typer.Option(None, "--rule", help="Only this rule's changes."),
    limit: int = typer.Option(50, min=1, help="At most this many changes, newest first."),
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """The audit trail: who changed which rule, when, why, and the diff."""
    with opened(store_url) as store:
        changes = store.history(mode, rule_id=rule_id, limit=limit)
    if not changes:
        say(f"no changes to the {mode} rule set yet")
    for c in changes:
        say(f"v{c.version}  {when(c.at_ms)}  {c.author}  {c.change} {c.rule_id}")
        if c.comment:
            say(f"    # {c.comment}")
        for line in c.diff.splitlines():
            say(f"    {line}")


@rules_app.command("diff")
def diff(
    old: int = typer.Argument(..., help="The older version (0: empty)."),
    new: int | None = typer.Argument(None, help="The newer version [the one in force]."),
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """What changed between two versions of the rule set."""
    with opened(store_url) as store:
        a = store.at_version(mode, old)
        b = store.current(mode) if new is None else store.at_version(mode, new)
    delta = set_delta(a.rules, b.rules)
    say(f"{mode} rule set version {a.version} -> {b.version}: {len(delta)} rule(s) changed")
    _print_delta(delta)


def _pack(file: Path) -> Pack:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise refuse(f"cannot read rule pack {file}: {exc}") from None
    return read_pack(text, source=str(file))


def _pack_mode(pack: Pack, mode: str) -> None:
    if pack.mode is not None and pack.mode != mode:
        raise RuleError(
            f"the pack is for mode {pack.mode!r}, not {mode!r}: pass --mode {pack.mode}"
        )


@rules_app.command("validate")
def validate(
    expression: str | None = typer.Argument(None, help="A condition to check."),
    file: Path | None = typer.Option(None, "--file", help="A rule pack (YAML or JSON) to check."),
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """Check a condition or a rule pack against the mode's fields and the store's lists,
    without saving anything."""
    if (expression is None) == (file is None):
        raise refuse("give an EXPRESSION or --file PACK (one of them)")
    with opened(store_url) as store:
        known = frozenset(store.lists_snapshot().lists)
        if file is not None:
            pack = _pack(file)
            _pack_mode(pack, mode)
            rules = RuleSet(pack.rules, Schema.for_mode(mode), lists=known)
            say(f"{file}: {len(rules)} rule(s) valid in mode {mode}")
            return
        assert expression is not None  # noqa: S101 - one of the two, checked above
        try:
            RuleSet([Rule("expression", expression, "review")], Schema.for_mode(mode), lists=known)
        except RuleError as exc:  # not a stored rule: no rule id in the message
            raise RuleError(exc.reason, text=exc.text, pos=exc.pos) from None
        say(f"valid in mode {mode}")


@rules_app.command("import")
def import_(
    file: Path | None = typer.Argument(None, help="A rule pack: YAML or JSON."),
    starter: bool = typer.Option(
        False, "--starter", help="The starter pack shipped for the mode (every rule in shadow)."
    ),
    replace_all: bool = typer.Option(
        False, "--replace", help="Also remove the stored rules the pack does not name."
    ),
    mode: str = MODE,
    author: str | None = AUTHOR,
    comment: str = COMMENT,
    store_url: str | None = STORE,
) -> None:
    """Add or update the pack's rules in one version; importing it again changes nothing."""
    if (file is None) == (not starter):
        raise refuse("give a FILE or --starter (one of them)")
    who = author_of(author)
    with opened(store_url) as store:
        pack = starter_pack(mode) if file is None else _pack(file)
        name = f"the {mode} starter pack" if file is None else file.name
        _pack_mode(pack, mode)
        result = store.import_rules(
            mode,
            pack.rules,
            author=who,
            comment=comment or f"import {name}",
            replace_all=replace_all,
        )
        _saved(f"{name} imported", result)


@rules_app.command("export")
def export(
    file: Path | None = typer.Argument(None, help="Where to write [stdout]."),
    fmt: str | None = typer.Option(
        None, "--format", help="yaml or json [from the file's extension, else yaml]."
    ),
    version: int | None = _VERSION,
    mode: str = MODE,
    store_url: str | None = STORE,
) -> None:
    """Write a version of the rule set as a pack (YAML or JSON) that `import` reads back."""
    chosen = fmt or ("json" if file is not None and file.suffix.lower() == ".json" else "yaml")
    _choice(chosen, ("yaml", "json"), "format")
    form: Literal["yaml", "json"] = "json" if chosen == "json" else "yaml"
    with opened(store_url) as store:
        v = store.current(mode) if version is None else store.at_version(mode, version)
    text = write_pack(v.rules, mode=mode, fmt=form)
    if file is None:
        typer.echo(text, nl=False)
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise refuse(f"cannot write {file}: {exc}") from None
    say(f"{len(v.rules)} rule(s) of {mode} version {v.version} written to {file}")


@rules_app.command("backtest")
def backtest_(
    paths: list[Path] | None = typer.Argument(
        None,
        metavar="[RULES] [DATA]",
        help="A rule pack (YAML or JSON) [the store's rule set of the mode, drafts included], "
        "then a transactions file (PaySim or card, CSV or Parquet); with --from/--to no DATA.",
    ),
    start: str | None = typer.Option(
        None,
        "--from",
        help="Stored transactions from this event time: a date, an ISO date-time "
        "(UTC unless it says otherwise) or ms since 1970.",
    ),
    end: str | None = typer.Option(
        None, "--to", help="... to this event time, excluded (a date: the end of that day)."
    ),
    starter: bool = typer.Option(False, "--starter", help="The mode's starter pack as RULES."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="DATA's scores and decisions from this bundle directory, or "
        "'current' (the promoted bundle); without one, rules reading score are skipped and the "
        "model allows everything.",
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="DATA's labels (as `labels import` reads them; default: "
        "DATA.labels.parquet / .csv beside it): the latest verdict per transaction.",
    ),
    ground_truth: bool = typer.Option(
        False,
        "--ground-truth",
        help="A row without a verdict takes its ground truth (DATA's "
        "isFraud / TX_FRAUD; the store's label column).",
    ),
    data_format: str | None = typer.Option(
        None, "--format", help="DATA's layout: paysim or card [card in mode card]."
    ),
    label_delay_days: float = typer.Option(
        7.0, help="Without a labels file: days after a fraud until the features know it (train's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The figures as JSON, not a table."),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the per-rule table to FILE.csv or FILE.parquet."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="The rules' mode [the pack's, else card for --format card, else pre_auth].",
    ),
    store_url: str | None = STORE,
) -> None:
    """What rules would have done on past transactions: per rule its hits, hits per day,
    precision and recall against the labels, overlap with the model's alerts and the other
    rules, and the cost under the configured costs. See docs/rules.md, "Backtests"."""
    rules_file, data = _backtest_paths(list(paths or []), start, end, starter)
    if data is None and (model is not None or labels is not None or data_format is not None):
        raise refuse("--model, --labels and --format are for a DATA file; the store has its own")
    pack = _pack(rules_file) if rules_file is not None else None
    mode = mode or (pack.mode if pack is not None else None)
    mode = mode or ("card" if data_format == "card" else "pre_auth")
    pack = starter_pack(mode) if starter else pack
    fmt = data_format or ("card" if mode == "card" else "paysim")
    _choice(fmt, ("paysim", "card"), "format")
    if (fmt == "card") != (mode == "card"):
        raise refuse(f"--format {fmt} does not go with mode {mode}: card files are mode card")
    settings = load_settings(store={"url": store_url})
    with opened(store_url) as store:
        if pack is not None:
            _pack_mode(pack, mode)
        rules = list(pack.rules) if pack is not None else list(store.current(mode).rules)
        if not rules:
            raise refuse(f"no rules to backtest: the {mode} rule set is empty; give a RULES pack")
        schema = Schema.for_mode(mode)
        reads = rule_columns(rules, schema)
        skipped: list[str] = []
        if data is not None and model is None:
            skipped = [r.id for r in rules if "score" in reads[r.id]]
            rules = [r for r in rules if r.id not in skipped]
        columns = frozenset().union(*(reads[r.id] for r in rules))
        if data is None:
            assert start is not None and end is not None  # noqa: S101 - _backtest_paths checked
            lo, hi = parse_time(start, "--from"), parse_time(end, "--to", end=True)
            frame = store_history(settings, lo, hi, columns, ground_truth)
            source = f"stored transactions from {when(lo)} to {when(hi)}"
        else:
            given = FileInput(data, fmt, mode, labels, ground_truth, label_delay_days, model)
            frame = file_history(settings, given, columns)
            source = str(data)
        lists = _backtest_lists(store, rules, schema)
        result = backtest(
            frame, rules, schema, lists=lists, costs=Costs(**settings.costs.model_dump())
        )
    notes = [f"skipped (they read score; give --model): {', '.join(skipped)}"] if skipped else []
    if out is not None:
        write_table(result.table, out)
    if as_json:
        typer.echo(to_json(result, source, notes))
    else:
        print_table(result, f"backtest of {len(rules)} {mode} rule(s) on {source}", notes)


def _backtest_paths(
    paths: list[Path], start: str | None, end: str | None, starter: bool
) -> tuple[Path | None, Path | None]:
    """``(RULES, DATA)`` from the positional arguments; a store range takes no DATA."""
    ranged = start is not None or end is not None
    if ranged and (start is None or end is None):
        raise refuse("a range of the store takes both --from and --to")
    least, most = (0, 1 - starter) if ranged else (1, 2 - starter)
    if not least <= len(paths) <= most:
        expected = (
            ("" if starter else "[RULES]") if ranged else ("DATA" if starter else "[RULES] DATA")
        )
        where = "with --from/--to" if ranged else "without --from/--to"
        raise refuse(f"expected {expected or 'no file'} {where}, got {len(paths)} file(s)")
    if ranged:
        return (paths[0] if paths else None), None
    return (paths[0] if len(paths) == 2 else None), paths[-1]


def _backtest_lists(
    store: RuleStore, rules: list[Rule], schema: Schema
) -> dict[str, frozenset[str]]:
    """The store's lists in force now; a list the rules name that the store lacks is empty."""
    lists = dict(store.lists_snapshot().lists)
    for name in rule_lists(rules, schema):
        lists.setdefault(name, frozenset())
    return lists
