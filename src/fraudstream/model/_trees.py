"""LightGBM's trees evaluated by a compiled, branch-free kernel: the scoring hot path.

``booster.predict`` walks every tree node by node, one row at a time; each split is a branch the
CPU cannot predict, so the detector's 200 small trees cost ~4-5 µs per row. This evaluator
follows QuickScorer (Lucchese et al., SIGIR 2015): a tree's leaves are numbered left to right
and each split that sends a row right clears the bits of its left subtree's leaves in the row's
leaf mask; the row's leaf is then the lowest bit still set. Every split of a tree is tested for a
whole block of rows at once (feature-major data, no data-dependent branches), so the loop
vectorises.

The result is LightGBM's raw score bit for bit: the same split rule (``x <= threshold`` goes
left, compared exactly: see :func:`_floor_f32`), the same missing-value rules (``None``: NaN is
0; ``NaN``/``Zero``: the default direction) and leaf values summed in tree order in double
precision. Models it cannot compile (categorical splits, more than 64 leaves in a tree,
multiclass, linear trees, averaged output) are refused by :meth:`CompiledTrees.refusal` and
the caller keeps ``booster.predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import lightgbm as lgb
import numba
import numpy as np
import numpy.typing as npt

__all__ = ["CompiledTrees", "lightgbm_values"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
B1 = npt.NDArray[np.bool_]

#: LightGBM's ``kZeroThreshold`` (a float): ``|x|`` at most this is zero for ``missing_type=Zero``.
_ZERO: Final = np.float32(1e-35)
_MAX_LEAVES: Final = 64  # one bit per leaf in a uint64 mask
#: Rows scored together: their feature block stays in the core's cache.
_BLOCK: Final = 1024
# count trailing zeros of a 64-bit word with one bit set: de Bruijn multiply, then a lookup
_DEBRUIJN: Final = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX: Final = np.zeros(64, np.int32)
for _i in range(64):
    _DEBRUIJN_INDEX[((_DEBRUIJN << np.uint64(_i)) & np.uint64(2**64 - 1)) >> np.uint64(58)] = _i


@numba.njit(cache=True, nogil=True)
def _raw_scores(
    xt: F32,
    node_start: I32,
    feature: I32,
    threshold: F32,
    nan_right: B1,
    zero_rule: B1,
    clear: U64 | U32,
    leaf_start: I32,
    leaf_value: F64,
    debruijn: I32,
    general: bool,
    out: F64,
) -> None:
    """Raw score of every column of ``xt`` (features × rows).

    ``general=False`` when every split has LightGBM's ``None`` missing rule and ``xt`` holds no
    NaN (the caller replaced them by 0.0, as LightGBM does): the missing-value test is skipped.
    """
    n = xt.shape[1]
    mask = np.empty(_BLOCK, clear.dtype)
    acc = np.empty(_BLOCK, np.float64)
    one = np.ones(1, clear.dtype)[0]
    full = ~(one - one)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        acc[:m] = 0.0
        for t in range(len(leaf_start)):
            mask[:m] = full
            for j in range(node_start[t], node_start[t + 1]):
                row = xt[feature[j]]
                th = threshold[j]
                cl = clear[j]
                if general:
                    nr = nan_right[j]
                    zr = zero_rule[j]
                    for r in range(m):  # branch-free, so the loop vectorises
                        v = row[start + r]
                        special = (v != v) | (zr & (abs(v) <= _ZERO))
                        right = (special & nr) | (~special & (v > th))
                        mask[r] &= cl if right else full
                else:
                    for r in range(m):
                        mask[r] &= cl if row[start + r] > th else full
            first = leaf_start[t]
            for r in range(m):
                low = np.uint64(mask[r] & (~mask[r] + one))  # lowest set bit: the row's leaf
                acc[r] += leaf_value[first + debruijn[(low * _DEBRUIJN) >> np.uint64(58)]]
        out[start : start + m] = acc[:m]


def _floor_f32(threshold: float) -> np.float32:
    """The largest float32 ≤ ``threshold``: for a float32 ``x``, ``x > t`` ⇔ ``x > floor(t)``.

    A threshold beyond float32's range (LightGBM writes 1e300 for "any value") is +inf, which
    sends +inf left as LightGBM does.
    """
    if threshold >= float(np.finfo(np.float32).max):
        return np.float32(np.inf)
    with np.errstate(over="ignore"):
        t32 = np.float32(threshold)  # -inf below float32's range
    if float(t32) > threshold:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return t32


def lightgbm_values(X: F32, general: bool) -> F32:
    """A C-ordered float32 copy of ``X`` with the values LightGBM compares.

    LightGBM reads ``|x| ≤ 1e-35`` as 0.0 when it converts a dense row; unless ``general`` (some
    split has the ``NaN`` or ``Zero`` missing rule) a missing value is compared as 0.0 too.
    """
    x = np.array(X, dtype=np.float32, order="C")
    x[np.abs(x) <= _ZERO] = 0.0
    if not general:
        x[np.isnan(x)] = 0.0
    return x


@dataclass(frozen=True)
class CompiledTrees:
    """A booster's trees as flat arrays: splits of tree ``t`` are ``node_start[t]:[t + 1]``."""

    n_features: int
    node_start: I32
    feature: I32
    threshold: F32  # float32 floor of LightGBM's double threshold
    nan_right: B1  # where a missing value goes (``None`` rule: where 0.0 goes)
    zero_rule: B1  # ``missing_type=Zero``: values within ±1e-35 also go the default way
    clear: U64 | U32  # clears the split's left-subtree leaves (AND when going right); uint32
    # when every tree has at most 32 leaves
    leaf_start: I32
    leaf_value: F64
    general: bool  # some split has the ``NaN`` or ``Zero`` missing rule

    @staticmethod
    def refusal(model: dict[str, Any]) -> str | None:
        """Why ``model`` (``booster.dump_model()``) cannot be compiled; ``None`` if it can."""
        if model.get("num_tree_per_iteration", 1) != 1:
            return "more than one tree per iteration (multiclass)"
        if model.get("average_output"):
            return "averaged output (random forest mode)"
        for tree in model["tree_info"]:
            if tree["num_leaves"] > _MAX_LEAVES:
                return f"a tree with more than {_MAX_LEAVES} leaves"
            stack = [tree["tree_structure"]]
            while stack:
                node = stack.pop()
                if "leaf_coeff" in node:
                    return "linear trees"
                if "split_index" not in node:
                    continue
                if node["decision_type"] != "<=":
                    return "categorical splits"
                stack += [node["left_child"], node["right_child"]]
        return None

    @classmethod
    def from_booster(cls, booster: lgb.Booster) -> CompiledTrees:
        """Compile ``booster``'s trees; ``ValueError`` (with the reason) if it cannot be."""
        return cls.from_model(booster.dump_model())

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> CompiledTrees:
        """Compile a ``booster.dump_model()``; ``ValueError`` (with the reason) if it cannot be."""
        why = cls.refusal(model)
        if why is not None:
            raise ValueError(f"cannot compile this LightGBM model: {why}")
        feature: list[int] = []
        threshold: list[np.float32] = []
        general = False  # some split sends a missing value elsewhere than 0.0 (see _raw_scores)
        nan_right: list[bool] = []
        zero_rule: list[bool] = []
        clear: list[int] = []
        leaves: list[float] = []
        node_start: list[int] = [0]
        leaf_start: list[int] = []

        def add(node: dict[str, Any], first_leaf: int) -> int:
            """Append ``node``'s splits (pre-order) and leaves (in order); its leaf count."""
            nonlocal general
            if "split_index" not in node:
                leaves.append(float(node["leaf_value"]))
                return 1
            at = len(feature)
            t = float(node["threshold"])
            missing = node["missing_type"]
            feature.append(int(node["split_feature"]))
            threshold.append(_floor_f32(t))
            # LightGBM: with missing_type None a NaN is compared as 0.0 (goes right if 0 > t)
            right = t < 0.0 if missing == "None" else not node["default_left"]
            nan_right.append(right)
            zero_rule.append(missing == "Zero")
            general = general or missing == "Zero" or right != (t < 0.0)
            clear.append(0)
            n_left = add(node["left_child"], first_leaf)
            left_bits = ((1 << n_left) - 1) << first_leaf
            clear[at] = ~left_bits & (2**64 - 1)
            return n_left + add(node["right_child"], first_leaf + n_left)

        for tree in model["tree_info"]:
            leaf_start.append(len(leaves))
            add(tree["tree_structure"], 0)
            node_start.append(len(feature))
        narrow = max((t["num_leaves"] for t in model["tree_info"]), default=1) <= 32
        return cls(
            n_features=int(model["max_feature_idx"]) + 1,
            node_start=np.array(node_start, np.int32),
            feature=np.array(feature, np.int32),
            threshold=np.array(threshold, np.float32),
            nan_right=np.array(nan_right, np.bool_),
            zero_rule=np.array(zero_rule, np.bool_),
            clear=(
                np.array([c & 0xFFFFFFFF for c in clear], np.uint32)
                if narrow
                else np.array(clear, np.uint64)
            ),
            leaf_start=np.array(leaf_start, np.int32),
            leaf_value=np.array(leaves, np.float64),
            general=general,
        )

    def raw_score(self, X: F32) -> F64:
        """The raw margin of each row, equal to ``booster.predict(X, raw_score=True)``."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (n, {self.n_features}), got {X.shape}")
        xt = lightgbm_values(X.T, self.general)  # features × rows
        out = np.empty(len(X), dtype=np.float64)
        _raw_scores(
            xt,
            self.node_start,
            self.feature,
            self.threshold,
            self.nan_right,
            self.zero_rule,
            self.clear,
            self.leaf_start,
            self.leaf_value,
            _DEBRUIJN_INDEX,
            self.general,
            out,
        )
        return out
