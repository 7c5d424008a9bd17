"""SHAP values of LightGBM's trees by a compiled kernel: the reason codes' hot path.

An alert's reason codes are its features' SHAP values (path-dependent TreeSHAP, Lundberg et al.
2018, what ``booster.predict(X, pred_contrib=True)`` returns). LightGBM's own call costs
0.3-0.4 ms a row for the detector's 200 trees of 15 leaves, so a batch's alerts cost more than
its scoring. This module gives the same values (to rounding) for a small fraction of that.

Method (Fast TreeSHAP v2, Yang 2021). In a tree, the value of a feature set ``S`` is a sum over
leaves; a leaf's term depends only on the distinct features ``U`` (``k`` of them) of its path:
for each ``d`` in ``U`` the factor is, if ``d`` is in ``S``, 1 when the row satisfies every split
on ``d`` along the path and 0 otherwise (``o_d``), and if not, the share of the training rows
that follow the path at those splits (``z_d``, LightGBM's counts). Feature ``p``'s Shapley value
in the leaf's term is then::

    value · (o_p − z_p) · Σ_{S ⊆ B∖{p}} |S|! (k − |S| − 1)! / k! · Π_{d ∈ U∖{p}∖S} z_d

where ``B`` is the set of path features the row satisfies: it depends on the row only through
``B``, a ``k``-bit mask. Every (leaf, ``B``, ``p``) value is computed once when a bundle loads
(``Σ 2^k·k`` of them); a row then costs one pass over each tree's splits (its direction bits)
and, per leaf, ``k`` mask tests and ``k`` additions. Split directions follow
:mod:`fraudstream.model._trees` exactly (same thresholds, same missing-value rules).

Rows whose direction bits in a tree are equal get the same values from it, so the leaves are
visited once per distinct pattern and the pattern's sums added to its rows: a batch's 636 alert
rows (50 live rules) showed 112 patterns per tree on average (200 trees of 15 leaves), and the
kernel went from 23-29 to 6.6 µs a row on them (in-process; the split tests also read the
features transposed, a feature's values side by side). A row's values never depend on
the other rows of its batch (the same sums, in the same order).

Later batches mostly meet the same patterns again (~90 % of a batch's patterns per tree were in
the batches before), so each tree keeps the values of up to 1,024 patterns between calls
(:class:`_Memo`, ~17 MB for 200 trees of 15 leaves, allocated at the first call; a full tree's
memo starts again): 10.4 → 5.7 µs a row on the alert rows of 50 live rules, in-process.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from fraudstream.model._trees import CompiledTrees, lightgbm_values

__all__ = ["CompiledShap"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

#: Precomputed values at most (``Σ 2^k·k`` over leaves): 8 M doubles, 64 MB. Deeper trees are
#: explained by LightGBM itself.
_MAX_TABLE: Final = 1 << 23
_ZERO: Final = np.float32(1e-35)
#: Trees with at most this many splits have their rows' direction patterns grouped through a
#: table of ``2^splits`` entries (one array read per row), wider ones by sorting; under
#: ``_DIRECT_ROWS`` rows each row is its own pattern (the same sums, so the same values).
_DIRECT_BITS: Final = 16
_DIRECT_ROWS: Final = 32
#: Direction patterns whose values a tree keeps between calls (a batch's alert rows held ~130
#: per tree, ~90 % of them seen in the batches before); a full tree's memo starts again. The
#: memo of a bundle takes at most ``_MEMO_BYTES`` (else it has none).
_MEMO_PATTERNS: Final = 1024
_MEMO_BYTES: Final = 64 << 20
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _contributions(
    x: F32,
    node_start: I32,
    feature: I32,
    threshold: F32,
    nan_right: npt.NDArray[np.bool_],
    zero_rule: npt.NDArray[np.bool_],
    general: bool,
    leaf_start: I32,
    leaf_k: I32,
    leaf_feature: I32,
    need_mask: U64,
    need_right: U64,
    table_start: I32,
    table: F64,
    feature_start: I32,
    tree_features: I32,
    leaf_slot: I32,
    bias: float,
    memo_keys: U64,
    memo_slot: I32,
    memo_fill: I32,
    memo_start: I64,
    memo_values: F64,
    memo_shift: int,
    out: F64,
) -> None:
    """Each row's SHAP values into ``out`` (rows × features + 1, the last column the bias).

    ``memo_*``: per tree, the values of patterns met before (:class:`_Memo`; no rows: none)."""
    n, nf = x.shape
    out[:, :nf] = 0.0
    out[:, nf] = bias
    columns = np.ascontiguousarray(x.T)  # a feature's values side by side for the split tests
    bits = np.empty(n, np.uint64)  # bit j of row r: the row goes right at the tree's j-th split
    group = np.empty(n, np.int64)  # the row's pattern among the tree's distinct ones
    patterns = np.empty(n, np.uint64)
    values = np.empty((n, nf), np.float64)  # a pattern's values from the tree, by its feature
    widest = int(np.max(np.diff(node_start))) if len(node_start) > 1 else 0
    direct = min(widest, _DIRECT_BITS) if n >= _DIRECT_ROWS else 0
    seen = np.full(1 << direct, -1, np.int64)  # pattern → its group
    memo = memo_slot.shape[0] > 0
    free = 0
    for t in range(len(node_start) - 1):
        s0, s1 = node_start[t], node_start[t + 1]
        _direction_bits(columns, s0, s1, feature, threshold, nan_right, zero_rule, general, bits)
        l0, l1 = leaf_start[t], leaf_start[t + 1]
        touched = tree_features[feature_start[t] : feature_start[t + 1]]
        m = len(touched)
        # rows with the same direction bits get the same values from this tree: each distinct
        # pattern's values are summed once, then added to its rows
        groups = _group(bits, s1 - s0, seen, group, patterns)
        for g in range(groups):
            pattern, row = patterns[g], values[g, :m]
            at = -1
            if memo:
                at, free = _find(memo_keys[t], memo_slot[t], pattern, memo_shift)
            if at >= 0:  # met before: its values, summed then from the same table, same order
                row[:] = memo_values[memo_start[t] + at * m : memo_start[t] + (at + 1) * m]
                continue
            _sum_leaves(
                pattern, l0, l1, leaf_k, need_mask, need_right, table_start, table, leaf_slot, row
            )
            if memo:  # kept for later batches
                at = _remember(memo_keys[t], memo_slot[t], memo_fill, t, pattern, free, memo_shift)
                memo_values[memo_start[t] + at * m : memo_start[t] + (at + 1) * m] = row
        for r in range(n):
            g = group[r]
            for z in range(m):
                out[r, touched[z]] += values[g, z]


@numba.njit(cache=True, nogil=True)
def _sum_leaves(
    pattern: np.uint64,
    l0: int,
    l1: int,
    leaf_k: I32,
    need_mask: U64,
    need_right: U64,
    table_start: I32,
    table: F64,
    leaf_slot: I32,
    row: F64,
) -> None:
    """Into ``row``, by the tree's features, the values of its leaves ``l0:l1`` for the rows
    whose direction bits are ``pattern``."""
    row[:] = 0.0
    for leaf in range(l0, l1):
        k = leaf_k[leaf]
        b = 0
        for p in range(k):
            if (pattern & need_mask[leaf, p]) == need_right[leaf, p]:
                b |= 1 << p
        base = table_start[leaf] + b * k
        for p in range(k):
            row[leaf_slot[leaf, p]] += table[base + p]


@numba.njit(cache=True, nogil=True)
def _find(keys: U64, slots: I32, pattern: np.uint64, shift: int) -> tuple[int, int]:
    """``pattern``'s place among a tree's memorised values (-1: none), and the free table
    entry where it would go (open addressing, linear probing)."""
    mask = len(slots) - 1
    i = int(np.int64((pattern * _GOLDEN) >> np.uint64(shift)))
    while slots[i] >= 0:
        if keys[i] == pattern:
            return int(slots[i]), i
        i = (i + 1) & mask
    return -1, i


@numba.njit(cache=True, nogil=True)
def _remember(
    keys: U64, slots: I32, fill: I32, t: int, pattern: np.uint64, free: int, shift: int
) -> int:
    """Give ``pattern`` (not in tree ``t``'s memo; ``free`` from :func:`_find`) a place, and
    return it; a memo holding half its table's size is emptied first."""
    if 2 * fill[t] >= len(slots):
        slots[:] = -1
        fill[t] = 0
        free = int(np.int64((pattern * _GOLDEN) >> np.uint64(shift)))
    at = fill[t]
    fill[t] = at + 1
    slots[free] = at
    keys[free] = pattern
    return int(at)


@numba.njit(cache=True, nogil=True)
def _group(
    bits: U64,
    splits: int,
    seen: npt.NDArray[np.int64],
    group: npt.NDArray[np.int64],
    patterns: U64,
) -> int:
    """Number the distinct values of ``bits``: ``group[r]`` is row ``r``'s, ``patterns[g]`` the
    value of group ``g``; how many. ``seen`` (all -1, left so) indexes patterns directly when
    the tree has at most :data:`_DIRECT_BITS` splits."""
    n = len(bits)
    groups = 0
    if n < _DIRECT_ROWS:  # too few rows to pay for finding equal ones: a pattern each
        for r in range(n):
            group[r] = r
            patterns[r] = bits[r]
        return n
    if splits <= _DIRECT_BITS:
        for r in range(n):
            b = bits[r]
            g = seen[b]
            if g < 0:
                g = groups
                seen[b] = g
                patterns[g] = b
                groups += 1
            group[r] = g
        for g in range(groups):
            seen[patterns[g]] = -1
        return groups
    order = np.argsort(bits)
    for i in range(n):
        r = order[i]
        if i == 0 or bits[r] != patterns[groups - 1]:
            patterns[groups] = bits[r]
            groups += 1
        group[r] = groups - 1
    return groups


@numba.njit(cache=True, nogil=True)
def _direction_bits(
    columns: F32,
    s0: int,
    s1: int,
    feature: I32,
    threshold: F32,
    nan_right: npt.NDArray[np.bool_],
    zero_rule: npt.NDArray[np.bool_],
    general: bool,
    bits: U64,
) -> None:
    """Into ``bits``, each row's directions at the splits ``s0:s1`` of one tree (bit j: right at
    split ``s0 + j``); ``columns``: features × rows."""
    one = np.uint64(1)
    bits[:] = 0
    for j in range(s0, s1):
        values = columns[feature[j]]
        th = threshold[j]
        bit = one << np.uint64(j - s0)
        for r in range(len(bits)):
            v = values[r]
            if general and ((v != v) or (zero_rule[j] and abs(v) <= _ZERO)):
                right = nan_right[j]
            else:
                right = v > th
            if right:
                bits[r] |= bit


@numba.njit(cache=True)
def _fill_table(
    leaf_k: I32, zero: F64, value: F64, table_start: I32, weights: F64, table: F64
) -> None:
    """``table[start + B·k + p]``: path feature ``p``'s value in the leaf's term for mask ``B``."""
    for leaf in range(len(leaf_k)):
        k = leaf_k[leaf]
        for b in range(1 << k):
            for p in range(k):
                o = 1.0 if (b >> p) & 1 else 0.0
                rest = b & ~(1 << p)
                total = 0.0
                s = rest
                while True:  # every subset S of B∖{p}, by the submask walk
                    prod = 1.0
                    size = 0
                    for d in range(k):
                        if d != p:
                            if (s >> d) & 1:
                                size += 1
                            else:
                                prod *= zero[leaf, d]
                    total += weights[k, size] * prod
                    if s == 0:
                        break
                    s = (s - 1) & rest
                table[table_start[leaf] + b * k + p] = value[leaf] * (o - zero[leaf, p]) * total


@dataclass(frozen=True)
class _Paths:
    """Per leaf (tree order, leaves left to right): its distinct path features and masks."""

    leaf_start: I32  # tree t's leaves: leaf_start[t]:leaf_start[t + 1]
    k: I32
    feature: I32  # leaves × depth: the global feature index of path feature p
    need_mask: U64  # the tree's splits on path feature p
    need_right: U64  # ... those of them the path leaves to the right
    zero: F64  # the share of training rows that follows the path at those splits
    value: F64
    bias: float  # the trees' expected output (SHAP's base value)


def _paths(model: dict[str, Any], trees: CompiledTrees) -> _Paths:
    """Walk every tree in :class:`CompiledTrees`'s pre-order (its split numbering)."""
    rows: list[tuple[list[int], list[int], list[int], list[float]]] = []
    values: list[float] = []
    leaf_start = [0]
    bias = 0.0
    at = 0  # global index of the next split, as CompiledTrees numbers them
    for tree in model["tree_info"]:
        first = at
        # (node, path: list of (local split, went right, feature, share))
        stack: list[tuple[dict[str, Any], list[tuple[int, bool, int, float]]]] = [
            (tree["tree_structure"], [])
        ]
        while stack:
            node, path = stack.pop()
            if "split_index" not in node:
                feats: dict[int, list[Any]] = {}
                for j, right, f, share in path:
                    entry = feats.setdefault(f, [0, 0, 1.0])
                    entry[0] |= 1 << j
                    entry[1] |= (1 << j) if right else 0
                    entry[2] *= share
                fs = list(feats)
                rows.append(
                    (
                        fs,
                        [feats[f][0] for f in fs],
                        [feats[f][1] for f in fs],
                        [feats[f][2] for f in fs],
                    )
                )
                value = float(node["leaf_value"])
                values.append(value)
                bias += value * math.prod(feats[f][2] for f in fs)
                continue
            j = at - first
            if int(node["split_feature"]) != int(trees.feature[at]):
                raise ValueError("tree walk out of step with the compiled trees")
            at += 1
            total = float(node["internal_count"])
            left, right = node["left_child"], node["right_child"]
            f = int(node["split_feature"])
            # pre-order: left subtree first, so push right below left
            stack.append((right, [*path, (j, True, f, _count(right) / total)]))
            stack.append((left, [*path, (j, False, f, _count(left) / total)]))
        leaf_start.append(len(values))
    depth = max((len(r[0]) for r in rows), default=0)
    n = len(rows)
    feature = np.zeros((n, max(depth, 1)), np.int32)
    need_mask = np.zeros((n, max(depth, 1)), np.uint64)
    need_right = np.zeros((n, max(depth, 1)), np.uint64)
    zero = np.ones((n, max(depth, 1)), np.float64)
    for i, (fs, masks, rights, shares) in enumerate(rows):
        feature[i, : len(fs)] = fs
        need_mask[i, : len(fs)] = masks
        need_right[i, : len(fs)] = rights
        zero[i, : len(fs)] = shares
    return _Paths(
        leaf_start=np.array(leaf_start, np.int32),
        k=np.array([len(r[0]) for r in rows], np.int32),
        feature=feature,
        need_mask=need_mask,
        need_right=need_right,
        zero=zero,
        value=np.array(values, np.float64),
        bias=bias,
    )


def _tree_features(paths: _Paths) -> tuple[I32, I32, I32]:
    """Per tree, the distinct features its leaves' paths hold (in first-seen order), and each
    leaf's path features' places among them."""
    starts = [0]
    features: list[int] = []
    slot = np.zeros_like(paths.feature)
    for t in range(len(paths.leaf_start) - 1):
        place: dict[int, int] = {}
        for leaf in range(paths.leaf_start[t], paths.leaf_start[t + 1]):
            for p in range(paths.k[leaf]):
                f = int(paths.feature[leaf, p])
                slot[leaf, p] = place.setdefault(f, len(place))
        features += list(place)
        starts.append(len(features))
    return np.array(starts, np.int32), np.array(features, np.int32), slot


def _count(node: dict[str, Any]) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _weights(depth: int) -> F64:
    """``w[k, s] = s! (k − s − 1)! / k!``: the Shapley weight of a coalition of ``s`` of ``k``."""
    w = np.zeros((depth + 1, max(depth, 1)), np.float64)
    for k in range(1, depth + 1):
        for s in range(k):
            w[k, s] = math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k)
    return w


class _Memo:
    """Per tree, the values of the direction patterns met so far (:func:`_contributions`):
    allocated at the first call, used by one caller at a time (:attr:`lock`).

    Rows of later batches mostly repeat earlier patterns, and a pattern's values are summed
    from the same table in the same order whenever they are computed, so a row's values never
    depend on what the memo holds.
    """

    def __init__(self, feature_start: I32, patterns: int = _MEMO_PATTERNS) -> None:
        self.lock = threading.Lock()
        self._widths = np.diff(feature_start).astype(np.int64)
        self._patterns = patterns
        self._arrays: tuple[U64, I32, I32, I64, F64, int] | None = None

    def arrays(self) -> tuple[U64, I32, I32, I64, F64, int]:
        """keys, slots, fill, values' start per tree, values, hash shift (no trees: no memo)."""
        if self._arrays is None:
            trees = len(self._widths)
            entries = 1 << max(1, (2 * self._patterns - 1).bit_length())  # ≥ 2 × patterns
            start = np.zeros(trees + 1, np.int64)
            start[1:] = np.cumsum(self._widths * (entries // 2))
            if trees * entries * 12 + int(start[-1]) * 8 > _MEMO_BYTES:
                trees, start = 0, np.zeros(1, np.int64)
            self._arrays = (
                np.zeros((trees, entries), np.uint64),
                np.full((trees, entries), -1, np.int32),
                np.zeros(trees, np.int32),
                start,
                np.empty(int(start[-1]), np.float64),
                64 - (entries.bit_length() - 1),
            )
        return self._arrays


@dataclass(frozen=True)
class CompiledShap:
    """A booster's TreeSHAP values, precomputed per leaf and path mask (see the module doc)."""

    trees: CompiledTrees
    paths: _Paths
    table_start: I32
    table: F64
    #: tree t's distinct path features: ``tree_features[feature_start[t]:feature_start[t + 1]]``
    feature_start: I32
    tree_features: I32
    leaf_slot: I32  # leaves × depth: path feature p's place among its tree's features
    memo: _Memo = field(compare=False, repr=False)

    @classmethod
    def from_model(cls, model: dict[str, Any], trees: CompiledTrees) -> CompiledShap:
        """Precompute ``model``'s (``booster.dump_model()``, compiled as ``trees``) values;
        ``ValueError`` if its paths are too deep for the table."""
        paths = _paths(model, trees)
        sizes = (1 << paths.k.astype(np.int64)) * paths.k
        if int(sizes.sum()) > _MAX_TABLE:
            raise ValueError(
                f"paths too deep for a SHAP table (up to {int(paths.k.max())} features)"
            )
        table_start = np.zeros(len(sizes), np.int32)
        table_start[1:] = np.cumsum(sizes)[:-1]
        table = np.zeros(int(sizes.sum()), np.float64)
        depth = int(paths.k.max()) if len(paths.k) else 0
        _fill_table(paths.k, paths.zero, paths.value, table_start, _weights(depth), table)
        feature_start, tree_features, leaf_slot = _tree_features(paths)
        return cls(
            trees=trees,
            paths=paths,
            table_start=table_start,
            table=table,
            feature_start=feature_start,
            tree_features=tree_features,
            leaf_slot=leaf_slot,
            memo=_Memo(feature_start),
        )

    def contributions(self, X: F32) -> F64:
        """Rows × (features + 1): each feature's SHAP value, then the base value, as
        ``booster.predict(X, pred_contrib=True)`` returns them (equal to rounding)."""
        t = self.trees
        if X.ndim != 2 or X.shape[1] != t.n_features:
            raise ValueError(f"expected features of shape (n, {t.n_features}), got {X.shape}")
        x = lightgbm_values(X, t.general)
        out = np.empty((len(X), t.n_features + 1), np.float64)
        p = self.paths
        with self.memo.lock:  # one caller at a time on the memo
            _contributions(
                x,
                t.node_start,
                t.feature,
                t.threshold,
                t.nan_right,
                t.zero_rule,
                t.general,
                p.leaf_start,
                p.k,
                p.feature,
                p.need_mask,
                p.need_right,
                self.table_start,
                self.table,
                self.feature_start,
                self.tree_features,
                self.leaf_slot,
                p.bias,
                *self.memo.arrays(),
                out,
            )
        return out
