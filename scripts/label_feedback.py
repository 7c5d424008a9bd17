"""Issue 17's figure: the PaySim format, both modes, before and after label feedback.

``python scripts/label_feedback.py [--rows N] [--rate TX_PER_S] [--seed S] [--accounts N]
[--train-seeds K] [--modes pre_auth,post_tx]`` simulates ONE history (a low rate, so that it
spans days of event time and labels arrive within it), draws the labels a bank would receive for
it (``batch_labels``: analyst verdicts within hours, chargebacks after 2-60 days, some frauds
never, a few genuine transactions disputed) and trains, per mode, three variants on the same
history and the same time-ordered split, each with ``K`` training seeds (LightGBM's: on a few
days of history its test AP moves by several hundredths between seeds, as much as some of the
differences measured; the tables show means):

- ``no_labels``: ``labels=()``, the label features are all zero (before label feedback);
- ``labels``: the labels replayed, each seen by the features from its label time on; the target
  is the simulator's ground truth (``history.label``), as ``train_bundle`` does by default;
- ``labels_bank_target``: the same features, but the training target (fit, calibration,
  thresholds, validation) is only what the labels say by the end of the training period (the
  test start minus the gap): a fraud not labelled by then counts as genuine and a disputed
  genuine transaction as fraud. This is what a bank can train on.

Every variant is measured on the same test part (the bundle's split: the last 25 % of rows after
a 1 h gap) against the ground truth: the scoring model's average precision and ROC AUC, the
alerts (decision >= review) and, per robot, the share of its test frauds at or above the review
threshold. A second table shows, per robot, how often a label feature is non-zero on its test
frauds (and on genuine test rows): what the labels can tell the model at all.

Prints two markdown tables and one JSON object (every seed's figures) on stdout; progress goes
to stderr. 2,000,000 rows at 5 tx/s (4.6 days), 3 seeds, one mode: about 6 minutes and 1.8 GB
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.features import LABEL_FEATURES, LabelBook, engine_for, feature_names
from fraudstream.model import Bundle, train_bundle
from fraudstream.schema import LabelMessage, TxBatch
from fraudstream.simulate import ROBOTS, PaySimSimulator, batch_labels

log = logging.getLogger("label_feedback")

MODES = ("pre_auth", "post_tx")
VARIANTS = ("no_labels", "labels", "labels_bank_target")
TEST_FRACTION = 0.25
GAP_MS = 3_600_000
_CHUNK = 50_000
Mask = npt.NDArray[np.bool_]


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000, help="transactions to simulate")
    p.add_argument("--rate", type=float, default=5.0, help="mean tx/s of the virtual clock")
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the simulator, the labels and the first training",
    )
    p.add_argument("--accounts", type=int, default=20_000, help="customers of the simulated bank")
    p.add_argument(
        "--train-seeds", type=int, default=3, help="training seeds per variant: --seed, --seed+1, …"
    )
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: pre_auth,post_tx")
    return p.parse_args(argv)


def _test_start_ms(t: npt.NDArray[np.int64]) -> int:
    """The bundle split's test start: the event time of the first of the last 25 % of rows."""
    return int(t[min(len(t) - 1, int(len(t) * (1.0 - TEST_FRACTION)))])


def known_by(h: TxBatch, labels: Sequence[LabelMessage], cut_ms: int) -> npt.NDArray[np.int8]:
    """Per row, the verdict in force at ``cut_ms`` (the latest label by then), else 0."""
    latest: dict[str, tuple[int, int]] = {}
    for m in labels:
        if m.labelled_at_ms <= cut_ms and m.labelled_at_ms >= latest.get(m.tx_id, (-1, 0))[0]:
            latest[m.tx_id] = (m.labelled_at_ms, m.label)
    return np.fromiter(
        (latest.get(tx, (0, 0))[1] for tx in h.tx_id), dtype=np.int8, count=len(h.tx_id)
    )


def bank_target(h: TxBatch, labels: Sequence[LabelMessage], cut_ms: int) -> TxBatch:
    """``h`` whose rows before ``cut_ms`` carry the labels known at ``cut_ms`` as their target;
    later rows (the test part) keep the ground truth it is measured against."""
    label = np.where(h.event_time_ms < cut_ms, known_by(h, labels, cut_ms), h.label)
    return replace(h, label=label.astype(h.label.dtype))


def measure(bundle: Bundle, scenario: list[str | None]) -> dict[str, Any]:
    """The scoring model's test figures against the ground truth, and recall per robot.

    ``scenario``: the robot of each test row (``None`` for genuine ones).
    """
    ev = bundle.evaluation
    y = ev["label"] == 1
    scores = ev["scores"][bundle.scoring_model]
    alert = bundle.decide(scores) >= 1
    robots = np.asarray(scenario, dtype=object)
    per_robot = {}
    for robot in ROBOTS:
        mine = robots == robot
        n = int(np.count_nonzero(mine))
        per_robot[robot] = {
            "test_frauds": n,
            "recall_at_review": float(np.mean(alert[mine])) if n else None,
        }
    m = bundle.metrics
    return {
        "scoring_model": bundle.scoring_model,
        "average_precision": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "lightgbm_average_precision": m["lightgbm"]["average_precision"],
        "logreg_average_precision": m["logreg"]["average_precision"],
        "review_threshold": bundle.thresholds.review,
        "alerts": int(np.count_nonzero(alert)),
        "alert_precision": float(np.mean(y[alert])) if alert.any() else None,
        "recall_at_review": float(np.mean(alert[y])),
        "robots": per_robot,
        "train_frauds_target": m["data"]["train_frauds"],
        "test_rows": m["data"]["test_rows"],
        "test_frauds": m["data"]["test_frauds"],
        "quality_warnings": m["quality"]["warnings"],
    }


def label_signal(h: TxBatch, labels: Sequence[LabelMessage], test: Mask) -> dict[str, Any]:
    """Per robot (and genuine rows): share of test rows with each label feature non-zero."""
    book = LabelBook()
    book.add(labels)
    engine = engine_for("pre_auth", labels=book)
    cols = [feature_names("pre_auth").index(f) for f in LABEL_FEATURES]
    parts = []
    for i in range(0, len(h), _CHUNK):
        x = engine.update_and_extract(h.take(np.arange(i, min(i + _CHUNK, len(h)))))
        parts.append(x[:, cols])
    nonzero = np.concatenate(parts)[test] > 0
    robots = np.asarray(h.scenario, dtype=object)[test]
    groups = {"genuine": h.label[test] == 0, **{r: robots == r for r in ROBOTS}}
    return {
        name: {
            "rows": int(np.count_nonzero(mask)),
            **{f: float(np.mean(nonzero[mask, j])) for j, f in enumerate(LABEL_FEATURES)},
            "any": float(np.mean(nonzero[mask].any(axis=1))),
        }
        for name, mask in groups.items()
        if mask.any()
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _models(names: list[str]) -> str:
    return ", ".join(f"{m} ×{names.count(m)}" for m in sorted(set(names)))


def _ap(r: dict[str, Any]) -> str:
    sd = r["average_precision_sd"]
    return f"{r['average_precision']:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def tables(results: dict[str, dict[str, Any]], signal: dict[str, Any]) -> str:
    """The figures as two markdown tables (means over the training seeds)."""
    head = ["mode", "variant", "scoring model", "AP", "ROC AUC", "LightGBM AP", "alerts"]
    head += ["alert precision", "recall at review", *ROBOTS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, r in results.items():
        mode, variant = key.split("/")
        row = [mode, variant, _models(r["scoring_models"]), _ap(r), f"{r['roc_auc']:.3f}"]
        row += [f"{r['lightgbm_average_precision']:.3f}", f"{r['alerts']:,.0f}"]
        row += [_pct(r["alert_precision"]), _pct(r["recall_at_review"])]
        row += [_pct(r["robots"][b]) for b in ROBOTS]
        lines.append("| " + " | ".join(row) + " |")
    head = ["test rows", "n", *(f.replace("confirmed_", "") for f in LABEL_FEATURES), "any"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in signal.items():
        row = [name, f"{s['rows']:,}", *(_pct(s[f]) for f in LABEL_FEATURES), _pct(s["any"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Setup:
    """The one fixed history, its labels and the split every variant is measured on."""

    history: TxBatch
    bank: TxBatch  # the history with the bank's target (labels known at ``cut_ms``) before it
    labels: list[LabelMessage]
    test_start_ms: int
    cut_ms: int  # end of the training period: test start minus the gap

    @property
    def test(self) -> Mask:
        return self.history.event_time_ms >= self.test_start_ms

    def describe(self) -> dict[str, Any]:
        t, h = self.history.event_time_ms, self.history
        t0 = int(t[0])
        return {
            "rows": len(h),
            "days": round((int(t[-1]) - t0) / 86_400_000, 2),
            "test_start_day": round((self.test_start_ms - t0) / 86_400_000, 2),
            "gap_ms": GAP_MS,
            "frauds": int(np.count_nonzero(h.label == 1)),
            "test_frauds": int(np.count_nonzero(h.label[self.test] == 1)),
            "labels": _label_counts(self.labels, self.cut_ms, int(t[-1])),
            "train_frauds_true": int(np.count_nonzero(h.label[t < self.cut_ms] == 1)),
            "train_frauds_known_at_cut": int(np.count_nonzero(self.bank.label[t < self.cut_ms])),
        }


def prepare(rows: int, rate: float, seed: int, accounts: int) -> Setup:
    """Simulate the history, draw its labels, fix the split."""
    sim = PaySimSimulator(accounts=accounts, seed=seed, rate_per_s=rate)
    h = sim.history(rows)
    h = h.take(np.argsort(h.event_time_ms, kind="stable"))
    labels = batch_labels(h, seed=seed)
    test_start = _test_start_ms(h.event_time_ms)
    cut = test_start - GAP_MS
    return Setup(h, bank_target(h, labels, cut), labels, test_start, cut)


def train_one(setup: Setup, mode: str, variant: str, seed: int) -> dict[str, Any]:
    """Train one bundle of ``variant`` and measure it on the test part."""
    began = time.monotonic()
    bundle = train_bundle(
        setup.bank if variant == "labels_bank_target" else setup.history,
        mode=mode,
        seed=seed,
        test_fraction=TEST_FRACTION,
        gap_ms=GAP_MS,
        labels=() if variant == "no_labels" else setup.labels,
    )
    if bundle.metrics["data"]["test_start_ms"] != setup.test_start_ms:
        raise RuntimeError("the bundle's test part is not the one measured here")
    test_robots = [s for s, x in zip(setup.history.scenario, setup.test, strict=True) if x]
    r = measure(bundle, test_robots)
    r["seed"] = seed
    r["seconds"] = round(time.monotonic() - began, 1)
    log.info(
        "%s/%s seed %d: AP %.3f in %.0f s",
        mode,
        variant,
        seed,
        r["average_precision"],
        r["seconds"],
    )
    return r


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean (and spread) over the training seeds of one mode and variant."""

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known else None

    ap = [r["average_precision"] for r in runs]
    return {
        "scoring_models": [r["scoring_model"] for r in runs],
        "average_precision": mean(ap),
        "average_precision_sd": float(np.std(ap, ddof=1)) if len(ap) > 1 else None,
        "average_precision_per_seed": ap,
        **{
            k: mean([r[k] for r in runs])
            for k in ("roc_auc", "lightgbm_average_precision", "alerts", "alert_precision")
        },
        "recall_at_review": mean([r["recall_at_review"] for r in runs]),
        "robots": {b: mean([r["robots"][b]["recall_at_review"] for r in runs]) for b in ROBOTS},
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = _args(argv)
    started = time.monotonic()
    setup = prepare(a.rows, a.rate, a.seed, a.accounts)
    facts = setup.describe()
    log.info("history: %s", {k: v for k, v in facts.items() if k != "labels"})
    seeds = range(a.seed, a.seed + a.train_seeds)
    results = {
        f"{mode}/{variant}": summarise([train_one(setup, mode, variant, s) for s in seeds])
        for mode in a.modes.split(",")
        for variant in VARIANTS
    }
    signal = label_signal(setup.history, setup.labels, setup.test)
    out = {
        "command": " ".join(["python scripts/label_feedback.py", *(argv or sys.argv[1:])]),
        "rate_per_s": a.rate,
        "seed": a.seed,
        "train_seeds": list(seeds),
        "accounts": a.accounts,
        **facts,
        "results": results,
        "label_signal": signal,
        "seconds": round(time.monotonic() - started, 1),
    }
    sys.stdout.write(tables(results, signal) + "\n\n" + json.dumps(out, indent=1) + "\n")
    return out


def _label_counts(labels: Sequence[LabelMessage], cut_ms: int, end_ms: int) -> dict[str, int]:
    """Labels per source, and how many are known by the training cut and by the history's end."""
    counts: dict[str, int] = {}
    for m in labels:
        counts[m.source] = counts.get(m.source, 0) + 1
    counts["known_at_training_cut"] = sum(m.labelled_at_ms <= cut_ms for m in labels)
    counts["known_at_history_end"] = sum(m.labelled_at_ms <= end_ms for m in labels)
    return counts


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    main()
