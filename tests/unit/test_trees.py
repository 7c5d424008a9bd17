"""The compiled tree scorer gives LightGBM's raw scores bit for bit, or refuses the model; the
compiled TreeSHAP gives LightGBM's ``pred_contrib`` to rounding, or refuses trees too deep."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pytest

from fraudstream.model._shap import CompiledShap, _Memo
from fraudstream.model._trees import CompiledTrees


def _data(rng: np.random.Generator, n: int, nan_share: float, zero_share: float) -> np.ndarray:
    x = rng.lognormal(0.0, 2.0, size=(n, 6)) * rng.choice([-1.0, 1.0], size=(n, 6))
    x[rng.random(x.shape) < zero_share] = 0.0
    x[rng.random(x.shape) < nan_share] = np.nan
    return x.astype(np.float32)


def _booster(x: np.ndarray, rng: np.random.Generator, **params: object) -> lgb.Booster:
    logit = np.nan_to_num(x[:, 0]) * 0.3 - np.isnan(x[:, 1]) + (x[:, 2] == 0) + np.sin(x[:, 3])
    y = (logit + rng.normal(size=len(x)) > 0.5).astype(int)
    return lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, **params},
        lgb.Dataset(x, y),
        num_boost_round=40,
    )


def _with_edges(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """Rows whose values sit exactly on, and one float32 step around, every split threshold."""
    model = booster.dump_model()
    splits: list[tuple[int, float]] = []
    stack = [t["tree_structure"] for t in model["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            splits.append((node["split_feature"], node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    rows = np.repeat(x[:1], 3 * len(splits), axis=0)
    for i, (f, t) in enumerate(splits):
        with np.errstate(over="ignore"):
            t32 = np.float32(t)  # ±inf for LightGBM's ±1e300 "any value" thresholds
        rows[3 * i : 3 * i + 3, f] = [
            t32,
            np.nextafter(t32, np.float32(np.inf)),
            np.nextafter(t32, np.float32(-np.inf)),
        ]
    return np.vstack([x, rows, np.full((1, x.shape[1]), np.nan, np.float32)])


@pytest.mark.parametrize(
    ("params", "nan_share", "zero_share"),
    [
        ({"num_leaves": 15}, 0.0, 0.0),  # the detector's shape: no missing values
        ({"num_leaves": 15}, 0.15, 0.1),  # NaN-aware splits (missing_type NaN)
        ({"num_leaves": 15, "use_missing": False}, 0.15, 0.1),  # missing_type None: NaN as 0
        ({"num_leaves": 15, "zero_as_missing": True}, 0.15, 0.2),  # missing_type Zero
        ({"num_leaves": 63, "max_depth": -1}, 0.1, 0.1),  # more than 32 leaves: 64-bit masks
    ],
)
def test_compiled_scores_equal_lightgbm_bit_for_bit(
    params: dict[str, object], nan_share: float, zero_share: float
) -> None:
    rng = np.random.default_rng(7)
    x = _data(rng, 4000, nan_share, zero_share)
    booster = _booster(x, rng, **params)
    trees = CompiledTrees.from_booster(booster)
    test = _with_edges(booster, _data(rng, 3000, nan_share, zero_share))
    for rows in (test, test[:1], test[:37], test[:65]):
        expected = booster.predict(rows, raw_score=True)
        assert np.array_equal(trees.raw_score(rows), expected)


@pytest.mark.parametrize(
    ("params", "nan_share", "zero_share"),
    [
        ({"num_leaves": 15, "max_depth": 5}, 0.0, 0.0),  # the detector's shape
        ({"num_leaves": 15}, 0.15, 0.1),  # deeper paths, a feature split twice on one path
        ({"num_leaves": 15, "use_missing": False}, 0.15, 0.1),
        ({"num_leaves": 15, "zero_as_missing": True}, 0.15, 0.2),
        ({"num_leaves": 40, "max_depth": 8, "bagging_fraction": 0.7, "bagging_freq": 1}, 0.1, 0.1),
    ],
)
def test_compiled_shap_equals_lightgbm_pred_contrib(
    params: dict[str, object], nan_share: float, zero_share: float
) -> None:
    rng = np.random.default_rng(11)
    x = _data(rng, 4000, nan_share, zero_share)
    booster = _booster(x, rng, **params)
    model = booster.dump_model()
    shap = CompiledShap.from_model(model, CompiledTrees.from_model(model))
    repeated = [
        n["split_feature"]
        for t in model["tree_info"]
        for n in _nodes(t["tree_structure"])
        if n["split_feature"] in {c.get("split_feature") for c in _nodes(n["left_child"])}
    ]
    if params.get("max_depth") != 5:  # the paths of these models do split a feature twice
        assert repeated
    test = _with_edges(booster, _data(rng, 2000, nan_share, zero_share))
    for rows in (test, test[:1], test[:37], test[:65]):
        expected = booster.predict(rows, pred_contrib=True)
        got = shap.contributions(rows)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # rows grouped by their direction patterns (a batch) or not (a few rows): the same values
    np.testing.assert_array_equal(shap.contributions(test[:5]), shap.contributions(test)[:5])


def test_shap_values_do_not_depend_on_the_pattern_memo() -> None:
    """The values a tree keeps between calls are the values it would compute: with the memo
    emptied again and again (2 patterns a tree), with none (over its byte budget), from four
    threads at once, every call gives the same values as a fresh bundle's first call."""
    rng = np.random.default_rng(3)
    x = _data(rng, 4000, 0.1, 0.1)
    booster = _booster(x, rng, num_leaves=15)
    model = booster.dump_model()
    shap = CompiledShap.from_model(model, CompiledTrees.from_model(model))
    test = _data(rng, 3000, 0.1, 0.1)
    first = shap.contributions(test)  # an empty memo: every pattern computed
    np.testing.assert_allclose(first, booster.predict(test, pred_contrib=True), rtol=1e-9)
    tiny = replace(shap, memo=_Memo(shap.feature_start, patterns=2))
    none = replace(shap, memo=_Memo(shap.feature_start, patterns=1 << 24))
    assert none.memo.arrays()[0].shape[0] == 0 and tiny.memo.arrays()[0].shape[0] > 0
    blocks = [test[i : i + 300] for i in range(0, len(test), 300)]
    for explainer in (shap, tiny, none):
        for _ in range(2):
            got = np.vstack([explainer.contributions(b) for b in blocks])
            assert np.array_equal(got, first)
    with ThreadPoolExecutor(4) as pool:
        got = np.vstack(list(pool.map(shap.contributions, blocks * 3)))
    assert np.array_equal(got, np.vstack([first] * 3))


def test_shap_refuses_paths_too_deep_to_tabulate() -> None:
    """A parity of 24 signs grows 63-leaf trees whose paths test ~15 distinct features: a
    table of Σ 2^k·k values over 8 M, so LightGBM explains that model itself."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6000, 30)).astype(np.float32)
    y = (np.prod(np.sign(x[:, :24]), axis=1) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 63, "min_data_in_leaf": 2}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=10)
    model = booster.dump_model()
    with pytest.raises(ValueError, match="too deep"):
        CompiledShap.from_model(model, CompiledTrees.from_model(model))


def _nodes(node: dict) -> list[dict]:
    if "split_index" not in node:
        return []
    return [node, *_nodes(node["left_child"]), *_nodes(node["right_child"])]


def test_missing_rules_are_exercised() -> None:
    """The parametrised models above really contain each of LightGBM's missing-value rules."""
    rng = np.random.default_rng(7)
    seen = set()
    for params, nan_share, zero_share in [
        ({}, 0.15, 0.1),
        ({"use_missing": False}, 0.15, 0.1),
        ({"zero_as_missing": True}, 0.15, 0.2),
    ]:
        booster = _booster(_data(rng, 4000, nan_share, zero_share), rng, **params)
        for t in booster.dump_model()["tree_info"]:
            seen |= {n["missing_type"] for n in _nodes(t["tree_structure"])}
    assert seen == {"None", "NaN", "Zero"}


def test_categorical_splits_are_refused() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 8, size=(2000, 3)).astype(np.float32)
    y = (x[:, 0] % 3 == 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(x, y, categorical_feature=[0]),
        num_boost_round=5,
    )
    assert CompiledTrees.refusal(booster.dump_model()) == "categorical splits"
    with pytest.raises(ValueError, match="categorical splits"):
        CompiledTrees.from_booster(booster)


def test_wrong_width_is_a_clear_error() -> None:
    rng = np.random.default_rng(1)
    x = _data(rng, 500, 0.0, 0.0)
    trees = CompiledTrees.from_booster(_booster(x, rng))
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        trees.raw_score(x[:, :5])
