"""``train --refit``: the validated figures kept, the shipped models fitted on all the history."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from fraudstream.features import FeatureEngine
from fraudstream.model import Bundle, train_bundle
from fraudstream.model._report import write_report
from fraudstream.model._train import replay
from fraudstream.schema import TxBatch
from fraudstream.simulate import PaySimSimulator


@pytest.fixture(scope="module")
def history() -> TxBatch:
    return PaySimSimulator(accounts=1500, seed=9, rate_per_s=2.0, fraud_rate=0.02).history(20_000)


@pytest.fixture(scope="module")
def bundles(history: TxBatch) -> tuple[Bundle, Bundle]:
    def train(refit: bool) -> Bundle:
        return train_bundle(history, seed=3, gap_ms=60_000, refit=refit)

    return train(False), train(True)


def test_the_validated_figures_calibration_and_thresholds_are_kept(
    bundles: tuple[Bundle, Bundle],
) -> None:
    default, refit = bundles
    skip = {"refit", "train_seconds"}
    assert {k: v for k, v in refit.metrics.items() if k not in skip} == {
        k: v for k, v in default.metrics.items() if k not in skip
    }
    assert "refit" not in default.metrics
    assert refit.calibrator == default.calibrator
    assert refit.thresholds == default.thresholds
    assert refit.scoring_model == default.scoring_model
    assert refit.version != default.version


def test_the_shipped_models_are_fitted_on_every_labelled_row(
    history: TxBatch, bundles: tuple[Bundle, Bundle]
) -> None:
    default, refit = bundles
    h = history.take(np.argsort(history.event_time_ms, kind="stable"))
    info = refit.metrics["refit"]
    assert info["rows"] == len(h) > refit.metrics["data"]["train_rows"]
    assert (info["start_ms"], info["end_ms"]) == (int(h.event_time_ms[0]), int(h.event_time_ms[-1]))
    # the same parameters and rounds on all rows, fitted here independently
    x = replay(h, "pre_auth")
    params = refit.info["training"]["lightgbm_params"]
    rounds = refit.booster.num_trees()
    booster = lgb.train(params, lgb.Dataset(x, label=h.label.astype(np.float64)), rounds)
    fresh = FeatureEngine().update_and_extract(
        PaySimSimulator(accounts=1500, seed=10, rate_per_s=2.0).history(3_000)
    )
    np.testing.assert_allclose(
        refit.booster.predict(fresh, raw_score=True), booster.predict(fresh, raw_score=True)
    )
    assert not np.allclose(
        refit.booster.predict(fresh, raw_score=True), default.booster.predict(fresh, raw_score=True)
    )
    assert rounds == default.booster.num_trees()


def test_the_report_says_the_models_were_refit(
    bundles: tuple[Bundle, Bundle], tmp_path: Path
) -> None:
    refit = bundles[1]
    refit.save(tmp_path)
    write_report(refit)
    text = " ".join((tmp_path / refit.version / "report.md").read_text().split())
    assert f"on all {refit.metrics['refit']['rows']:,} labelled rows" in text
    assert "Every figure below is the validated models'" in text
    loaded = Bundle.load(tmp_path / refit.version)
    assert loaded.metrics["refit"] == refit.metrics["refit"]
