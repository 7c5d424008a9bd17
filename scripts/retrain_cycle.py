"""A retrain cycle on the simulator after a robot-mix change (docs/retrain.md).

1. A PaySim bank runs ``--base-days`` on its base robot mix; a champion is trained on that
   history with the labels the live simulator sends (as ``fraudstream train`` without a file)
   and promoted.
2. The robot mix changes (``MixShift``). The bank goes on for ``--stream-days`` through the
   real feature engine (state warm from the base history) and the champion, in batches written to
   the store as the detector writes them; each label is recorded in the store once the stream
   reaches its label time (the detector records labels as they arrive).
3. ``fraudstream retrain`` (the CLI, as a subprocess) trains a challenger from the store and
   registers it for shadow scoring.
4. The bank goes on for ``--shadow-days``: the champion scores, the challenger scores in shadow
   (``shadow_decisions``), labels keep arriving.
5. ``fraudstream retrain --promote-check`` runs the gate.

Then both bundles are measured on the shadow period's rows against the simulator's ground truth
(held out from both: later than anything either was trained on). Prints JSON.

    .venv/bin/python scripts/retrain_cycle.py --workdir data/retrain-cycle --json data/retrain.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from fraudstream.features import engine_for
from fraudstream.model import Bundle, promote, train_bundle
from fraudstream.model._registry import challenger_version, promoted_version
from fraudstream.model._train import label_book
from fraudstream.schema import LabelMessage, ScoredBatch, ShadowScores, TxBatch
from fraudstream.simulate import MixShift, PaySimSimulator
from fraudstream.simulate._labels import batch_labels
from fraudstream.sinks import Store, open_store

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: event times in the past, as a store's


def until(sim: PaySimSimulator, end_ms: int, carry: list[TxBatch]) -> TxBatch:
    """The simulator's next transactions before ``end_ms`` (``carry``: rows drawn past it)."""
    parts = carry[:]
    carry.clear()
    while not parts or parts[-1].event_time_ms[-1] < end_ms:
        parts.append(sim.history(20_000))
    rows = TxBatch.concat(parts)
    late = rows.event_time_ms >= end_ms
    carry.append(rows.take(np.flatnonzero(late)))
    return rows.take(np.flatnonzero(~late))


class StoreFeed:
    """Scores batches as the detector does and writes them, and the due labels, to the store."""

    def __init__(self, store: Store, engine: Any, labels: list[LabelMessage]) -> None:
        self.store = store
        self.engine = engine
        self.labels = sorted(labels, key=lambda lab: lab.labelled_at_ms)
        self.next_label = 0
        self.offset = 0

    def skip_labels_before(self, ms: int) -> None:
        """Labels before ``ms`` belong to the base history (never stored)."""
        while (
            self.next_label < len(self.labels) and self.labels[self.next_label].labelled_at_ms < ms
        ):
            self.next_label += 1

    def run(self, rows: TxBatch, champion: Bundle, challenger: Bundle | None, batch: int) -> None:
        for lo in range(0, len(rows), batch):
            part = rows.take(np.arange(lo, min(lo + batch, len(rows))))
            due = self._due(int(part.event_time_ms[-1]))
            if due:
                self.store.record_labels(due)
            x = self.engine.update_and_extract(part)
            score = champion.score(x)
            decision = champion.decide(score)
            shadow = None
            if challenger is not None:
                c = challenger.score(x)
                shadow = ShadowScores(challenger.version, c, challenger.decide(c))
            self.store.write(
                ScoredBatch(
                    tx=part,
                    feature_names=champion.feature_names,
                    features=x,
                    score=score,
                    decision=decision,
                    reasons=champion.explain_alerts(x, decision),
                    model_version=champion.version,
                    partition=np.zeros(len(part), np.int32),
                    shadow=shadow,
                    offset=np.arange(self.offset, self.offset + len(part), dtype=np.int64),
                    processed_at_ms=int(time.time() * 1000),
                )
            )
            self.offset += len(part)
            self.store.flush()

    def _due(self, now_ms: int) -> list[LabelMessage]:
        start = self.next_label
        while (
            self.next_label < len(self.labels)
            and self.labels[self.next_label].labelled_at_ms <= now_ms
        ):
            self.next_label += 1
        return self.labels[start : self.next_label]


def cli(args: list[str], env: dict[str, str]) -> str:
    """Run ``fraudstream ARGS`` with ``env``; its output (the exact command is printed)."""
    print("$ fraudstream " + " ".join(args), file=sys.stderr)
    exe = Path(sys.executable).with_name("fraudstream")
    done = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"fraudstream {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ground_truth_ap(rows: TxBatch, x: np.ndarray, bundles: dict[str, Bundle]) -> dict[str, Any]:
    """AP of each bundle on ``rows`` against the simulator's ``isFraud``."""
    y = rows.label == 1
    out: dict[str, Any] = {"rows": len(rows), "frauds": int(y.sum())}
    for role, b in bundles.items():
        out[role] = {
            "version": b.version,
            "average_precision": float(average_precision_score(y, b.score(x))),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workdir", type=Path, default=Path("data/retrain-cycle"))
    p.add_argument("--store-url", default=None, help="default: sqlite:///WORKDIR/store.db")
    p.add_argument("--accounts", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=0.5, help="transactions per second of event time")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--base-days", type=float, default=3.0)
    p.add_argument("--stream-days", type=float, default=4.0)
    p.add_argument("--shadow-days", type=float, default=3.0)
    p.add_argument("--base-robots", default="account_takeover,mule_fan_in,compromised_merchant")
    p.add_argument("--shift-robots", default="card_testing,compromised_customer,account_takeover")
    p.add_argument("--shift-fraud-rate", type=float, default=0.01)
    p.add_argument("--retrain-args", default="--lookback 30d --label-delay 1d --eval-window 1d")
    p.add_argument("--gate-args", default="--label-delay 1d --margin 0.01 --min-fraud-labels 30")
    p.add_argument("--batch", type=int, default=2_000)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    started = time.monotonic()
    a.workdir.mkdir(parents=True, exist_ok=True)
    models = a.workdir / "models"
    url = a.store_url or f"sqlite:///{(a.workdir / 'store.db').resolve()}"
    env = {**os.environ, "FRAUDSTREAM_STORE__URL": url, "FRAUDSTREAM_MODELS_DIR": str(models)}

    shift_ms = START_MS + int(a.base_days * DAY_MS)
    sim = PaySimSimulator(
        accounts=a.accounts,
        seed=a.seed,
        rate_per_s=a.rate,
        start_ms=START_MS,
        robots=a.base_robots.split(","),
        shift=MixShift(shift_ms, robots=a.shift_robots.split(","), fraud_rate=a.shift_fraud_rate),
    )
    carry: list[TxBatch] = []
    base = until(sim, shift_ms, carry)
    stream_end = shift_ms + int(a.stream_days * DAY_MS)
    stream = until(sim, stream_end, carry)
    shadow = until(sim, stream_end + int(a.shadow_days * DAY_MS), carry)
    everything = TxBatch.concat([base, stream, shadow])
    labels = batch_labels(everything, seed=a.seed)
    base_labels = [lab for lab in labels if lab.labelled_at_ms < shift_ms]

    champion = train_bundle(base, mode="pre_auth", seed=0, labels=base_labels)
    champion.save(models)
    promote(models, champion.version)

    store = open_store(url)
    store.open()
    engine = engine_for(champion.mode, labels=label_book(labels))
    for lo in range(0, len(base), 50_000):  # state warm from the base history (not stored)
        engine.update_and_extract(base.take(np.arange(lo, min(lo + 50_000, len(base)))))
    feed = StoreFeed(store, engine, labels)
    feed.skip_labels_before(shift_ms)
    try:
        feed.run(stream, champion, None, a.batch)
        retrain_out = cli(["retrain", *a.retrain_args.split()], env)
        chall_version = challenger_version(models)
        if chall_version is None:
            raise SystemExit(f"retrain registered no challenger:\n{retrain_out}")
        challenger = Bundle.load(models / chall_version)
        feed.run(shadow, champion, challenger, a.batch)
    finally:
        store.close()
    gate_out = cli(["retrain", "--promote-check", *a.gate_args.split()], env)
    listing = cli(["model", "list", "--events", "10"], env)

    x_shadow = engine_for(champion.mode, labels=label_book(labels))
    for lo in range(0, len(everything) - len(shadow), 50_000):
        x_shadow.update_and_extract(
            everything.take(np.arange(lo, min(lo + 50_000, len(everything) - len(shadow))))
        )
    x = x_shadow.update_and_extract(shadow)
    result = {
        "rows": {"base": len(base), "stream": len(stream), "shadow": len(shadow)},
        "frauds": {
            "base": int((base.label == 1).sum()),
            "stream": int((stream.label == 1).sum()),
            "shadow": int((shadow.label == 1).sum()),
        },
        "labels_stored": feed.next_label,
        "promoted_after_gate": promoted_version(models),
        "champion": champion.version,
        "challenger": challenger.version,
        "ground_truth_on_shadow_period": ground_truth_ap(
            shadow, x, {"champion": champion, "challenger": challenger}
        ),
        "seconds": round(time.monotonic() - started, 1),
        "outputs": {"retrain": retrain_out, "gate": gate_out, "model_list": listing},
    }
    if a.json is not None:
        a.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "outputs"}, indent=2))
    return result


if __name__ == "__main__":
    main()
