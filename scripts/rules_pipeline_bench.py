"""In-process stand-in for the rules bench: the detector's two threads without the broker.

``python scripts/rules_pipeline_bench.py [ROUNDS]`` scores 300,000 simulated PaySim transactions
in 20,000-row batches with the promoted bundle (one is trained if there is none) on a consuming
thread: decode, features, score, then the 50 rules of ``fraudstream bench --rules 50``. A second
thread does what the detector's sink worker does with each batch: the alerts' reason codes,
their JSON messages (built, not sent) and the SQLite store (every row, alerts, one commit), with
a queue of two batches between the threads. Three variants run ``ROUNDS`` (5) times each, in
rotating order:

- ``none``: no rules;
- ``live``: the rules decide (their review/block rows become alerts);
- ``evaluated``: the rules are evaluated and their hits stored, their decisions dropped (the
  cost of shadow rules).

Prints one JSON line: each variant's tx/s, and the ratios of medians to ``none`` with a 90 %
bootstrap interval. Runs move less than the bench's (no broker, no prefill), so changes of a
few percent to the alerts' path can be judged with it; the bench stays the measure.
"""

from __future__ import annotations

import json
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from fraudstream.bench._paired import ratio_interval
from fraudstream.bench._rules import fifty_rules, rule_lists
from fraudstream.cli._app import load_settings
from fraudstream.cli._train import ensure_model
from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle
from fraudstream.rules import RuleSet, Schema, batch_frame
from fraudstream.schema import ScoredBatch, decode_paysim, encode_paysim, paysim_to_batch
from fraudstream.simulate import PaySimSimulator
from fraudstream.sinks import SQLiteStore
from fraudstream.sinks._alerts import alert_payloads

ROWS = 300_000
BATCH = 20_000
ACCOUNTS = 20_000
VARIANTS = ("none", "live", "evaluated")


class Pipeline:
    """The records, the bundle and the rules shared by every run."""

    def __init__(self) -> None:
        self.bundle = Bundle.load(ensure_model(load_settings()))
        self.bundle.warm_up()
        records = PaySimSimulator(accounts=ACCOUNTS, seed=1).next_batch(ROWS)
        self.values = [encode_paysim(r) for r in records]
        schema = Schema.for_mode(self.bundle.mode, self.bundle.feature_names)
        self.rules = RuleSet(fifty_rules(), schema)
        self.lists = {name: frozenset(v) for name, v in rule_lists(ACCOUNTS).items()}

    def scored(self, engine: FeatureEngine, start: int, variant: str) -> ScoredBatch:
        """One batch decoded, scored and decided, as the consuming thread does it."""
        bundle = self.bundle
        records, _, _ = decode_paysim(self.values[start : start + BATCH])
        tx = paysim_to_batch(records, [f"t/0/{start + i}" for i in range(len(records))])
        x = engine.update_and_extract(tx)
        score = bundle.score(x)
        batch = ScoredBatch(
            tx=tx,
            feature_names=bundle.feature_names,
            features=x,
            score=score,
            decision=bundle.decide(score),
            reasons=[],
            model_version=bundle.version,
            partition=np.zeros(len(tx), dtype=np.int32),
            offset=np.arange(start, start + len(tx), dtype=np.int64),
            processed_at_ms=int(time.time() * 1000),
        )
        if variant != "none":
            frame = batch_frame(batch, self.rules.columns)
            got = self.rules.decide(frame, batch.decision, self.lists, normalised=True)
            if variant == "live":
                batch.decision = got.decision
            batch.rules_fired, batch.rules_shadow = got.fired, got.shadow_fired
            batch.rule_set_version = self.rules.version
        return batch

    def run(self, variant: str) -> float:
        """Transactions per second of one run, from the first batch to the last commit."""
        engine = FeatureEngine(mode=self.bundle.mode)
        engine.warm_up()
        handed: queue.Queue[ScoredBatch | None] = queue.Queue(maxsize=2)
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "store.db")
            store.open()

            def consume() -> None:
                for start in range(0, ROWS, BATCH):
                    handed.put(self.scored(engine, start, variant))
                handed.put(None)

            def output() -> None:
                while (batch := handed.get()) is not None:
                    batch.reasons = self.bundle.explain_alerts(batch.features, batch.decision)
                    alert_payloads(batch)
                    store.write(batch)
                    store.flush()

            started = time.perf_counter()
            threads = [threading.Thread(target=consume), threading.Thread(target=output)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            store.close()
        return ROWS / elapsed


def main(rounds: int) -> dict[str, object]:
    pipeline = Pipeline()
    pipeline.run("none")  # warm: compiled kernels, caches
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for k in range(rounds):
        order = VARIANTS[k % 3 :] + VARIANTS[: k % 3]
        for variant in order if k % 2 == 0 else order[::-1]:
            runs[variant].append(pipeline.run(variant))
    out: dict[str, object] = {"tx_per_s": {v: [round(x) for x in r] for v, r in runs.items()}}
    for variant in ("live", "evaluated"):
        low, high = ratio_interval(runs["none"], runs[variant])
        ratio = float(np.median(runs[variant]) / np.median(runs["none"]))
        out[variant] = {"ratio": round(ratio, 3), "interval_90": [round(low, 3), round(high, 3)]}
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)) + "\n")
