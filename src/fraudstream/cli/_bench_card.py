"""``fraudstream bench --format card``: the card bundle the runs score with, the card state run
and its lines of the report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from fraudstream.bench import card_history, card_state_bytes
from fraudstream.cli._app import console
from fraudstream.cli._train import _print_metrics, _save_with_report, _train
from fraudstream.config import Settings
from fraudstream.model import Bundle, latest_bundle, list_bundles

__all__ = ["card_bundle", "card_state", "print_card_state"]

#: The handbook's customers (and a month of its history) for a first card bundle.
_TRAIN_CUSTOMERS: Final = 5_000
_TRAIN_ROWS: Final = 300_000
_LABEL_DELAY_MS: Final = 7 * 86_400_000
#: The state run's customers at most, and its days of event time: the bytes per entity grow
#: with the days of history kept (30 days a customer, 97 a terminal), not with the population.
_STATE_CUSTOMERS: Final = 20_000
_STATE_DAYS: Final = (1, 7, 30, 90)


@contextmanager
def _on_stderr() -> Iterator[None]:
    """The console's output to stderr meanwhile: stdout carries the figures alone (``--json``)."""
    out = console.file
    console.file = sys.stderr
    try:
        yield
    finally:
        console.file = out


def card_bundle(settings: Settings) -> Bundle:
    """The promoted bundle if it is a card one, else the newest card bundle, else a first one
    trained on simulated handbook history and saved as a candidate: the bundle in service
    (a PaySim one for ``detect``) is never replaced by the bench. Notices go to stderr."""
    with _on_stderr():
        return _card_bundle(settings)


def _card_bundle(settings: Settings) -> Bundle:
    promoted = latest_bundle(settings.models_dir)
    if promoted is not None:
        bundle = Bundle.load(promoted)
        if bundle.mode == "card":
            return bundle
    cards = [b for b in list_bundles(settings.models_dir) if b.manifest.get("mode") == "card"]
    if cards:
        console.print(f"card bundle [bold]{cards[-1].version}[/] (the newest card bundle)")
        return Bundle.load(cards[-1].path)
    console.print("no card bundle yet: training one on simulated handbook history")
    seed = settings.simulate.seed + 1
    with console.status(f"simulating {_TRAIN_ROWS:,} card transactions of history…"):
        history, labels = card_history(rows=_TRAIN_ROWS, customers=_TRAIN_CUSTOMERS, seed=seed)
    bundle = _train(
        history, settings, mode="card", seed=seed, gap_ms=_LABEL_DELAY_MS, labels=labels
    )
    _save_with_report(bundle, settings)
    _print_metrics(bundle)
    console.print(f"{bundle.version} stays a candidate: `bench --format card` finds it next time")
    return bundle


def card_state(results: dict[str, Any], *, customers: int, partitions: int) -> None:
    """The card engine's state after 1 to 90 days of history, into ``results``."""
    customers = min(customers, _STATE_CUSTOMERS)
    with console.status(f"card state: {customers:,} customers, {max(_STATE_DAYS)} days…"):
        state = card_state_bytes(customers=customers, days=_STATE_DAYS, partitions=partitions)
    results["card_state"] = state
    results["state_bytes_per_customer"] = state["state_bytes_per_customer"]
    results["state_bytes_per_terminal"] = state["state_bytes_per_terminal"]


def print_card_state(r: dict[str, Any]) -> None:
    """The card state's lines of the report."""
    st = r["card_state"]
    console.print(
        f"card state ({st['customers']:,} customers, {st['terminals']:,} terminals; a terminal "
        "has a state in each partition it is seen in), bytes at allocated capacity:"
    )
    for d in st["days"]:
        console.print(
            f"  after {d['day']:.0f} d ({d['transactions']:,.0f} tx): "
            f"[bold]{d['bytes_per_customer']:,.0f}[/] per customer "
            f"({d['customers_held']:,.0f} held), [bold]{d['bytes_per_terminal']:,.0f}[/] per "
            f"terminal state ({d['terminals_held']:,.0f} held)"
        )
    console.print(f"peak RSS {r['peak_rss_mb']:,.0f} MB")
