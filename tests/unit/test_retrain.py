"""Retraining's pure parts: targets, the gate, the registry's challenger and rollback, the loop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fraudstream.cli._app import stop_event
from fraudstream.cli._retrain import run_every
from fraudstream.errors import ModelError
from fraudstream.model._bundle import BUNDLE_FILE
from fraudstream.model._costs import Thresholds
from fraudstream.model._registry import (
    challenger_version,
    list_bundles,
    promote,
    promoted_version,
    rollback,
    rollback_target,
    set_challenger,
)
from fraudstream.model._retrain import RetrainPolicy, gate, known_targets

DAY = 86_400_000


def _bundles(root: Path, *names: str) -> Path:
    for n in names:
        (root / n).mkdir(parents=True)
        (root / n / BUNDLE_FILE).write_text("{}")
    return root


def test_known_targets_exclude_young_unlabelled_rows_only() -> None:
    label = np.array([1, 0, -1, -1, 1], np.int8)
    t = np.array([0, 0, 0, 9 * DAY, 9 * DAY], np.int64)
    assert known_targets(label, t, 10 * DAY, 7 * DAY).tolist() == [1, 0, 0, -1, 1]


def _gate(frauds: int, lead: float, shadow_days: float = 1.0, **policy: Any) -> Any:
    rng = np.random.default_rng(0)
    n = 4_000
    verdict = np.full(n, -1, np.int8)
    verdict[:frauds] = 1
    t = np.zeros(n, np.int64)  # all mature at 10 days
    champion = rng.random(n)
    challenger = champion + lead * (verdict == 1)
    b = SimpleNamespace(version="v", thresholds=Thresholds(review=0.5, block=0.9))
    return gate(
        (champion, challenger),
        verdict,
        t,
        np.full(n, 10.0),
        (b, b),  # type: ignore[arg-type]
        RetrainPolicy(min_fraud_labels=30, margin=0.05, max_shadow_ms=7 * DAY, **policy),
        as_of_ms=10 * DAY,
        shadow_ms=int(shadow_days * DAY),
    )


def test_gate_promotes_only_with_enough_labels_and_margin() -> None:
    assert _gate(100, 0.5).decision == "promote"
    below = _gate(100, 0.0)
    assert below.decision == "reject" and "below the margin" in below.reason
    few = _gate(10, 0.5)
    assert few.decision == "wait" and "10 fraud verdicts" in few.reason
    assert _gate(10, 0.5, shadow_days=8).decision == "reject"


def test_challenger_pointer_promotion_and_rollback(tmp_path: Path) -> None:
    root = _bundles(tmp_path, "v1", "v2", "v3")
    with pytest.raises(ModelError, match="nothing to roll back"):
        rollback(root)
    promote(root, "v1")
    set_challenger(root, "v2")
    assert {b.version: b.status for b in list_bundles(root)}["v2"] == "challenger"
    with pytest.raises(ModelError, match="promoted one"):
        set_challenger(root, "v1")
    promote(root, "v2")  # promoting the challenger clears the pointer
    assert challenger_version(root) is None
    set_challenger(root, "v3")
    promote(root, "v3")
    assert rollback_target(root) == "v2"
    assert rollback(root) == ("v3", "v2")
    assert rollback(root) == ("v2", "v1")  # v3 was rolled back: never returned to
    assert promoted_version(root) == "v1" and rollback_target(root) is None


def test_every_loop_survives_a_failing_cycle_and_stops_on_sigterm() -> None:
    calls: list[int] = []

    def cycle() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store down")
        os.kill(os.getpid(), signal.SIGTERM)  # the handler sets the stop event

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop = stop_event()
        assert threading.current_thread() is threading.main_thread()
        runs, failures = run_every(cycle, 0.01, stop)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert (runs, failures) == (2, 1) and stop.is_set()
