from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.errors import ModelError
from fraudstream.features import FeatureEngine
from fraudstream.model import (
    MIN_TEST_FRAUDS,
    Bundle,
    Costs,
    Thresholds,
    latest_bundle,
    list_bundles,
    promote,
    promoted_version,
    train_bundle,
)
from fraudstream.model._costs import choose_thresholds, decide, expected_cost
from fraudstream.schema import KINDS, TxBatch

PAYMENT, TRANSFER, CASH_OUT, CASH_IN = (
    KINDS.index(k) for k in ("PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN")
)
MIN = 60_000


def synthetic_history(n: int = 8000, *, seed: int = 0, fraud: bool = True) -> TxBatch:
    """Customers pay and shop; now and then a robot drains an account into a fresh mule by a
    TRANSFER, and the mule cashes out minutes later. Both robot rows are fraud (label 1)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, str, str, int, float, float, int]] = []
    balance = {f"C{i}": float(rng.uniform(100, 20_000)) for i in range(300)}
    customers = list(balance)
    t, mules = 0, itertools.count()
    while len(rows) < n:
        t += int(rng.integers(1, 3 * MIN))
        a = customers[int(rng.integers(len(customers)))]
        if fraud and rng.random() < 0.012:
            mule = f"MULE{next(mules)}"
            amount = balance[a]
            rows.append((t, a, mule, TRANSFER, amount, balance[a], 1))
            rows.append(
                (
                    t + int(rng.integers(1, 10 * MIN)),
                    mule,
                    f"M{rng.integers(50)}",
                    CASH_OUT,
                    amount,
                    amount,
                    1,
                )
            )
            balance[a] = float(rng.uniform(100, 20_000))  # the customer is refunded, life goes on
            continue
        kind = int(rng.choice([PAYMENT, TRANSFER, CASH_OUT, CASH_IN], p=[0.5, 0.15, 0.2, 0.15]))
        share = 1.0 if rng.random() < 0.02 else float(rng.uniform(0.01, 0.4))
        amount = round(balance[a] * share, 2)
        cp = (
            customers[int(rng.integers(len(customers)))]
            if kind == TRANSFER
            else f"M{rng.integers(50)}"
        )
        rows.append((t, a, cp, kind, amount, balance[a], 0))
        balance[a] += amount if kind == CASH_IN else -amount
        balance[a] = max(balance[a], 0.0) + (500.0 if balance[a] < 50 else 0.0)
    rows.sort(key=lambda r: r[0])
    rows = rows[:n]
    m = len(rows)
    amount = np.array([r[4] for r in rows])
    old = np.array([r[5] for r in rows])
    t_ms = np.array([r[0] for r in rows], dtype=np.int64)
    return TxBatch(
        tx_id=[f"tx{i}" for i in range(m)],
        event_time_ms=t_ms,
        account=[r[1] for r in rows],
        counterparty=[r[2] for r in rows],
        kind=np.array([r[3] for r in rows], dtype=np.int8),
        amount=amount,
        old_balance_orig=old,
        new_balance_orig=np.maximum(old - amount, 0.0),
        old_balance_dest=np.zeros(m),
        new_balance_dest=amount.copy(),
        label=np.array([r[6] for r in rows], dtype=np.int8),
        step=t_ms // 3_600_000,
        flagged=np.zeros(m, dtype=np.int8),
    )


@pytest.fixture(scope="module")
def history() -> TxBatch:
    return synthetic_history()


@pytest.fixture(scope="module")
def bundle(history: TxBatch) -> Bundle:
    return train_bundle(history, seed=3)


@pytest.fixture(scope="module")
def features(history: TxBatch) -> np.ndarray:
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    return FeatureEngine(mode="pre_auth").update_and_extract(h)


def test_learns_fraud_on_the_time_ordered_test_set(bundle: Bundle) -> None:
    m = bundle.metrics
    data = m["data"]
    base_rate = data["test_frauds"] / data["test_rows"]
    assert data["test_frauds"] >= 10 and data["calibration_frauds"] >= 1
    for model in ("lightgbm", "logreg"):
        assert m[model]["average_precision"] is not None
        assert m[model]["roc_auc"] > 0.5
        for key in ("precision_at_100", "recall_at_1pct_fpr", "alerts", "expected_cost"):
            assert key in m[model]
        assert {"precision", "recall", "threshold"} <= set(m[model]["review"])
    assert m["lightgbm"]["average_precision"] > max(0.5, 10 * base_rate)
    assert m["lightgbm"]["roc_auc"] > 0.9
    assert m["lightgbm"]["expected_cost"] < m["lightgbm"]["expected_cost_allow_all"]
    assert data["test_start_ms"] >= data["train_end_ms"] + data["gap_ms"]
    assert data["train_start_ms"] < data["calibration_start_ms"] < data["validation_start_ms"]
    assert data["validation_start_ms"] <= data["train_end_ms"]
    assert (
        data["fit_rows"] + data["calibration_rows"] + data["validation_rows"] == data["train_rows"]
    )
    assert data["validation_frauds"] >= 1
    assert m["quality"]["meaningful"] and m["quality"]["test_frauds"] >= MIN_TEST_FRAUDS
    assert data["train_rows"] + data["test_rows"] < data["rows"]  # the gap is dropped
    assert bundle.mode == "pre_auth" and bundle.feature_names == FeatureEngine().feature_names


def test_thresholds_are_ordered_probabilities(bundle: Bundle) -> None:
    t = bundle.thresholds
    assert 0.0 <= t.review <= t.block
    assert bundle.metrics[bundle.scoring_model]["review"]["threshold"] == t.review
    assert bundle.metrics[bundle.scoring_model]["block"]["threshold"] == t.block


def test_scores_are_calibrated_probabilities(bundle: Bundle, features: np.ndarray) -> None:
    s = bundle.score(features)
    assert s.shape == (len(features),) and s.dtype == np.float64
    assert np.all((s >= 0) & (s <= 1))
    assert bundle.score(features[:0]).shape == (0,)
    with pytest.raises(ModelError, match="shape"):
        bundle.score(features[:, :-1])


def test_save_load_round_trip(bundle: Bundle, features: np.ndarray, tmp_path: Path) -> None:
    path = bundle.save(tmp_path)
    assert path == tmp_path / bundle.version and bundle.path == path
    assert {p.name for p in path.iterdir()} == {
        "lgbm.txt",
        "logreg.joblib",
        "calibrator.json",
        "bundle.json",
        "drift.json",  # the drift reference (docs/drift.md)
    }
    manifest = json.loads((path / "bundle.json").read_text())
    assert {
        "version",
        "mode",
        "feature_names",
        "thresholds",
        "metrics",
        "data_fingerprint",
        "created_at",
    } <= set(manifest)
    loaded = Bundle.load(path)
    x = features[-500:]
    np.testing.assert_array_equal(loaded.score(x), bundle.score(x))
    np.testing.assert_array_equal(loaded.score_baseline(x), bundle.score_baseline(x))
    assert loaded.explain(x[:5]) == bundle.explain(x[:5])
    assert (loaded.version, loaded.thresholds, loaded.feature_names) == (
        bundle.version,
        bundle.thresholds,
        bundle.feature_names,
    )
    assert loaded.metrics == json.loads(json.dumps(bundle.metrics))
    assert loaded.scoring_model == bundle.scoring_model == manifest["scoring_model"]
    assert latest_bundle(tmp_path) is None, "a saved bundle is a candidate, not in service"
    promote(tmp_path, bundle.version)
    assert latest_bundle(tmp_path) == path
    with pytest.raises(ModelError, match="already exists"):
        bundle.save(tmp_path)


def test_only_the_promoted_bundle_is_in_service(bundle: Bundle, tmp_path: Path) -> None:
    assert latest_bundle(tmp_path / "missing") is None
    assert latest_bundle(tmp_path) is None
    path = bundle.save(tmp_path)
    (tmp_path / "99991231T000000Z-unfinished").mkdir()
    (tmp_path / ".99991231T000000Z-tmp").mkdir()
    assert latest_bundle(tmp_path) is None and promoted_version(tmp_path) is None
    promote(tmp_path, bundle.version)
    assert latest_bundle(tmp_path) == path
    newer = tmp_path / "99991231T000000Z-copy"
    shutil.copytree(path, newer)
    assert latest_bundle(tmp_path) == path, "a newer candidate is not in service"
    assert [(b.version, b.status) for b in list_bundles(tmp_path)] == [
        (bundle.version, "promoted"),
        (newer.name, "candidate"),
    ]
    promote(tmp_path, newer.name)
    assert latest_bundle(tmp_path) == newer
    assert [b.status for b in list_bundles(tmp_path)] == ["retired", "promoted"]
    assert list_bundles(tmp_path)[0].scoring_model == bundle.scoring_model
    promote(tmp_path, bundle.version)  # a rollback is a promotion too
    assert [b.status for b in list_bundles(tmp_path)] == ["promoted", "retired"]
    state = json.loads((tmp_path / "promotion.json").read_text())
    assert [h["version"] for h in state["history"]] == [bundle.version, newer.name, bundle.version]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".promotion")], "temp left"


def test_promotion_refuses_unknown_versions_and_reports_a_corrupt_state(
    bundle: Bundle, tmp_path: Path
) -> None:
    path = bundle.save(tmp_path)
    for bad in ("nope", "99991231T000000Z-unfinished", "../x", ".hidden"):
        with pytest.raises(ModelError, match="no bundle"):
            promote(tmp_path, bad)
    assert not (tmp_path / "promotion.json").exists()
    promote(tmp_path, bundle.version)
    (tmp_path / "promotion.json").write_text("{half")
    with pytest.raises(ModelError, match="corrupt.*model promote"):
        latest_bundle(tmp_path)
    (tmp_path / "promotion.json").write_text(json.dumps({"promoted": "gone", "history": []}))
    with pytest.raises(ModelError, match="gone is missing"):
        latest_bundle(tmp_path)
    assert path.is_dir()


def test_load_rejects_corrupt_or_mismatched_bundles(bundle: Bundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path)
    with pytest.raises(ModelError, match="bundle.json"):
        Bundle.load(tmp_path / "nothing")
    manifest = json.loads((path / "bundle.json").read_text())
    manifest["feature_names"] = manifest["feature_names"][:-1] + ["a_removed_feature"]
    (path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="retrain"):
        Bundle.load(path)
    (path / "lgbm.txt").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        Bundle.load(path)


def test_decide_respects_thresholds(bundle: Bundle) -> None:
    t = Thresholds(review=0.2, block=0.7)
    scores = np.array([0.0, 0.19, 0.2, 0.5, 0.7, 0.99])
    assert decide(scores, t).tolist() == [0, 0, 1, 1, 2, 2]
    got = bundle.decide(scores)
    assert got.dtype == np.int8
    expected = (scores >= bundle.thresholds.review).astype(int) + (
        scores >= bundle.thresholds.block
    )
    assert got.tolist() == expected.tolist()


def scoring_with(bundle: Bundle, model: str) -> Bundle:
    """The same trained parts, scoring with ``model`` (its calibration is not refitted)."""
    return Bundle(
        version=bundle.version,
        mode=bundle.mode,
        feature_names=bundle.feature_names,
        thresholds=bundle.thresholds,
        metrics=bundle.metrics,
        booster=bundle.booster,
        calibrator=bundle.calibrator,
        baseline=bundle.baseline,
        scoring_model=model,
    )


def test_explain_names_three_features_per_row(bundle: Bundle, features: np.ndarray) -> None:
    bundle = scoring_with(bundle, "lightgbm")
    x = features[:50]
    reasons = bundle.explain(x)
    assert len(reasons) == 50
    contrib = bundle.booster.predict(x, pred_contrib=True)
    for i, row in enumerate(reasons):
        assert len(row) == 3
        names = [name for name, _, _ in row]
        assert set(names) <= set(bundle.feature_names) and len(set(names)) == 3
        shares = [c for _, _, c in row]
        assert shares == sorted(shares, reverse=True)
        assert shares[0] == pytest.approx(contrib[i, :-1].max())
        for name, value, _ in row:
            assert value == pytest.approx(float(x[i, bundle.feature_names.index(name)]))
    assert len(bundle.explain(x, top=5)[0]) == 5
    assert bundle.explain(x[:0]) == []


def test_training_is_deterministic(history: TxBatch, bundle: Bundle, features: np.ndarray) -> None:
    again = train_bundle(history, seed=3)
    np.testing.assert_array_equal(again.score(features), bundle.score(features))
    assert again.thresholds == bundle.thresholds
    assert again.version.split("-")[1] == bundle.version.split("-")[1]


def test_post_tx_mode_trains_on_balance_errors() -> None:
    b = train_bundle(synthetic_history(4000, seed=1), mode="post_tx", test_fraction=0.3)
    assert b.mode == "post_tx" and "error_balance_orig" in b.feature_names
    assert b.metrics["lightgbm"]["average_precision"] is not None


def test_model_error_on_unusable_history() -> None:
    with pytest.raises(ModelError, match="no fraud"):
        train_bundle(synthetic_history(3000, fraud=False))
    with pytest.raises(ModelError, match="at least"):
        train_bundle(synthetic_history(200))
    with pytest.raises(ModelError, match="mode"):
        train_bundle(synthetic_history(3000), mode="sometime")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.05, 0.2, 0.4, 0.6, 0.8, 0.95]), st.booleans(), st.floats(1, 500)
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([1.0, 0.5, 0.2, 0.01]),
)
def test_thresholds_minimise_expected_cost(
    rows: list[tuple[float, bool, float]], capacity: float
) -> None:
    scores = np.array([r[0] for r in rows])
    label = np.array([int(r[1]) for r in rows], dtype=np.int8)
    amount = np.array([r[2] for r in rows])
    costs = Costs(max_alert_share=capacity)
    chosen = choose_thresholds(scores, label, amount, costs)
    assert chosen.review <= chosen.block
    cap = int(capacity * len(rows))
    assert np.count_nonzero(scores >= chosen.review) <= cap, "review capacity respected"
    cuts = [0.0, *sorted(set(scores.tolist())), 1.5]
    best = min(
        expected_cost(decide(scores, Thresholds(r, b)), label, amount, costs)
        for r in cuts
        for b in cuts
        if r <= b and np.count_nonzero(scores >= r) <= cap
    )
    got = expected_cost(decide(scores, chosen), label, amount, costs)
    assert got == pytest.approx(best)


def test_baseline_reasons_are_coefficient_times_standardised_value(
    bundle: Bundle, features: np.ndarray
) -> None:
    x = features[:50]
    reasons = bundle.explain_baseline(x)
    assert all(len(r) == 3 for r in reasons)
    pipe = bundle.baseline
    assert pipe is not None
    z = pipe[:-1].transform(x.astype(np.float64))
    contrib = z * pipe[-1].coef_[0]
    logit = contrib.sum(axis=1) + pipe[-1].intercept_[0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), bundle.score_baseline(x), rtol=1e-5)
    for row, rs in enumerate(reasons):
        j = bundle.feature_names.index(rs[0][0])
        assert rs[0][2] == pytest.approx(contrib[row].max())
        assert rs[0][1] == pytest.approx(float(x[row, j]))
        assert rs[0][2] >= rs[1][2] >= rs[2][2]


def test_a_logreg_scoring_bundle_scores_and_explains_with_the_baseline(
    bundle: Bundle, features: np.ndarray
) -> None:
    b = scoring_with(bundle, "logreg")
    assert b.trees is None and b.linear is not None
    x = features[:2000]
    pipe = b.baseline
    assert pipe is not None
    margin = pipe.decision_function(x)
    np.testing.assert_allclose(b.margin(x), margin, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.score(x), b.calibrator(margin), rtol=1e-5, atol=1e-9)
    assert b.explain(x[:20]) == b.explain_baseline(x[:20])
    assert b.score(features[:0]).shape == (0,)
    with pytest.raises(ModelError, match="no baseline|has none"):
        Bundle(
            version="v",
            mode=b.mode,
            feature_names=b.feature_names,
            thresholds=b.thresholds,
            metrics={},
            booster=b.booster,
            calibrator=b.calibrator,
            scoring_model="logreg",
        )


def test_the_model_better_on_validation_scores_and_the_choice_is_recorded(
    history: TxBatch, features: np.ndarray, tmp_path: Path
) -> None:
    """A LightGBM that cannot split (constant score) loses to the baseline on validation."""
    b = train_bundle(history, seed=3, lightgbm_params={"min_data_in_leaf": 10**7})
    sel = b.metrics["selection"]
    val = sel["validation"]
    assert b.scoring_model == sel["chosen"] == "logreg"
    assert sel["criterion"] == "expected_cost"
    assert val["logreg"]["expected_cost"] < val["lightgbm"]["expected_cost"]
    assert val["logreg"]["average_precision"] > val["lightgbm"]["average_precision"]
    assert "lower expected cost on validation: logreg" in sel["reason"]
    assert b.thresholds.review == b.metrics["logreg"]["review"]["threshold"]
    assert b.thresholds.block == b.metrics["logreg"]["block"]["threshold"]
    # the bundle scores with the baseline, calibrated: monotone in its decision function
    s, margin = b.score(features), b.baseline.decision_function(features)
    order = np.argsort(margin, kind="stable")
    assert np.all(np.diff(s[order]) >= -1e-12) and s.std() > 0
    loaded = Bundle.load(b.save(tmp_path))
    assert loaded.scoring_model == "logreg" and loaded.metrics["selection"]["chosen"] == "logreg"
    np.testing.assert_array_equal(loaded.score(features), s)
    assert json.loads((tmp_path / b.version / "bundle.json").read_text())["scoring_model"] == (
        "logreg"
    )


def test_selection_rule() -> None:
    from fraudstream.model._select import select_model

    def val(cost_l: float, cost_r: float, ap_l: float | None, ap_r: float | None) -> dict:
        return {
            "lightgbm": {"expected_cost": cost_l, "average_precision": ap_l},
            "logreg": {"expected_cost": cost_r, "average_precision": ap_r},
        }

    assert select_model(val(100.0, 90.0, 0.9, 0.1), frauds=5).chosen == "logreg"
    assert select_model(val(90.0, 100.0, 0.1, 0.9), frauds=5).chosen == "lightgbm"
    tie = select_model(val(100.0, 100.05, 0.2, 0.3), frauds=5)
    assert (tie.chosen, tie.criterion) == ("logreg", "average_precision")
    assert "tie" in tie.reason
    even = select_model(val(100.0, 100.0, 0.3, 0.3), frauds=5)
    assert (even.chosen, even.criterion) == ("lightgbm", "average_precision")
    none = select_model(val(100.0, 1.0, None, None), frauds=0)
    assert (none.chosen, none.criterion) == ("lightgbm", "default")
    assert none.as_dict()["validation"]["logreg"]["expected_cost"] == 1.0


def test_too_few_test_frauds_refused_or_marked() -> None:
    small = synthetic_history(3000, seed=5)
    with pytest.raises(ModelError, match=r"the test part has \d+ frauds in [\d,]+ rows") as err:
        train_bundle(small, refuse_few_frauds=True)
    message = str(err.value)
    assert "--allow-few-frauds" in message and "\n" not in message
    need = int(message.split("about ")[1].split(" rows")[0].replace(",", ""))
    assert need > len(small), message
    marked = train_bundle(small)
    q = marked.metrics["quality"]
    assert q["meaningful"] is False and q["test_frauds"] < MIN_TEST_FRAUDS
    assert q["min_test_frauds"] == MIN_TEST_FRAUDS
    assert any("not meaningful" in w for w in q["warnings"])
    assert marked.info["metrics_meaningful"] is False
    big = synthetic_history(8000)
    assert train_bundle(big, refuse_few_frauds=True).metrics["quality"]["meaningful"] is True


def test_equal_or_never_thresholds_are_flagged() -> None:
    from fraudstream.model._costs import NEVER
    from fraudstream.model._train import _quality

    metrics = {
        "data": {"test_frauds": 100, "validation_frauds": 50},
        "selection": {"chosen": "logreg"},
    }
    assert _quality(metrics, Thresholds(0.2, 0.7))["warnings"] == []
    (equal,) = _quality(metrics, Thresholds(0.4, 0.4))["warnings"]
    assert "equal" in equal
    (never,) = _quality(metrics, Thresholds(NEVER, NEVER))["warnings"]
    assert "never alerts" in never
    few = _quality(
        {**metrics, "data": {"test_frauds": 2, "validation_frauds": 1}}, Thresholds(1, 1)
    )
    assert few["meaningful"] is False and len(few["warnings"]) == 3


def test_model_watcher_follows_the_promotion_pointer_only(
    bundle: Bundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fraudstream.stream import ModelWatcher

    path = bundle.save(tmp_path)
    promote(tmp_path, bundle.version)
    watcher = ModelWatcher(tmp_path, Bundle.load(path), check_every_s=0.0)
    assert watcher.poll() is None
    newer = tmp_path / "99991231T000000Z-newer"
    shutil.copytree(path, newer)
    assert watcher.poll() is None, "a candidate is ignored"
    promote(tmp_path, newer.name)
    switched = watcher.poll()
    assert switched is not None and switched.path == newer
    assert watcher.poll() is None, "returned once"
    promote(tmp_path, bundle.version)  # rollback
    back = watcher.poll()
    assert back is not None and back.path == path
    broken = tmp_path / "99991231T000001Z-broken"
    shutil.copytree(path, broken)
    (broken / "lgbm.txt").write_text("not a model")
    promote(tmp_path, broken.name)
    assert watcher.poll() is None and watcher.poll() is None
    assert sum("cannot be loaded" in r.message for r in caplog.records) == 1, "logged once"
    (tmp_path / "promotion.json").write_text("{")
    assert watcher.poll() is None
    promote_state = {"promoted": newer.name, "history": []}
    (tmp_path / "promotion.json").write_text(json.dumps(promote_state))
    again = watcher.poll()
    assert again is not None and again.path == newer
    slow = ModelWatcher(tmp_path, bundle, check_every_s=3600.0)
    assert slow.poll() is None, "not checked before check_every_s"


def test_model_watcher_follows_the_challenger_pointer(
    bundle: Bundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fraudstream.model._registry import set_challenger
    from fraudstream.stream import ModelWatcher

    path = bundle.save(tmp_path)
    promote(tmp_path, bundle.version)
    other = tmp_path / "99991231T000000Z-challenger"
    shutil.copytree(path, other)
    fixed = ModelWatcher(tmp_path, Bundle.load(path), check_every_s=0.0)
    watcher = ModelWatcher(tmp_path, Bundle.load(path), check_every_s=0.0, follow_challenger=True)
    assert watcher.poll_challenger() == (False, None), "none registered"
    set_challenger(tmp_path, other.name)
    assert fixed.poll_challenger() == (False, None), "not followed unless asked"
    changed, shadow = watcher.poll_challenger()
    assert changed and shadow is not None and shadow.path == other
    assert watcher.poll_challenger() == (False, None), "returned once"
    assert watcher.poll() is None, "the champion is unchanged"
    set_challenger(tmp_path, None)  # promoted or rejected
    assert watcher.poll_challenger() == (True, None)
    assert watcher.poll_challenger() == (False, None)
    broken = tmp_path / "99991231T000001Z-broken"
    shutil.copytree(path, broken)
    (broken / "lgbm.txt").write_text("not a model")
    set_challenger(tmp_path, broken.name)
    assert watcher.poll_challenger() == (False, None)
    assert watcher.poll_challenger() == (False, None)
    assert (
        sum("challenger" in r.message and "cannot be loaded" in r.message for r in caplog.records)
        == 1
    ), "logged once"
    set_challenger(tmp_path, other.name)
    slow = ModelWatcher(tmp_path, bundle, check_every_s=3600.0, follow_challenger=True)
    assert slow.poll_challenger()[0], "the registered challenger is read at once"
    assert slow.poll_challenger() == (False, None), "then not before check_every_s"
