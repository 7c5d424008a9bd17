"""Drift reference of a bundle and the population stability index (pure functions, no I/O).

A bundle's *reference* is, per monitored feature and for the calibrated score, a histogram of the
training rows: bin edges from their quantiles and the share of rows in each bin. Live rows are
binned with the same edges (:func:`bin_index`) and compared by the population stability index

    PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)

over the bins ``i``, with ``e_i`` the reference share and ``a_i`` the live share, both floored at
``eps`` (``1e-4``) so that an empty bin costs a finite amount. PSI is a symmetrised
Kullback-Leibler divergence: 0 for identical histograms, about δ² for a normal shifted by δ standard
deviations (deciles). The usual reading: below 0.1 stable, 0.1-0.25 watch, above 0.25 act.

Bins are right-closed, ``(e_{j-1}, e_j]``: bin 0 is ``(-inf, e_0]``, bin ``k`` (``k`` edges) is
``(e_{k-1}, +inf]`` and bin ``k + 1`` holds the missing values (NaN). Edges are the
``bins``-quantiles of the finite reference values, with two refinements: a feature with at most
``bins`` distinct values gets one bin per value (flags, kinds, counts near zero), and a value
holding more than ``1/bins`` of the rows (a point mass, e.g. zero) gets a bin of its own, the
remaining values sharing the other quantile bins. The score adds tail edges (its 95th, 99th and
99.9th percentiles) so that more high scores (more fraud, or a model gone wrong) move it.
Calendar features (:data:`CALENDAR_FEATURES`) are not monitored: a short window sees one hour of
the day by construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraudstream.errors import ModelError

__all__ = [
    "CALENDAR_FEATURES",
    "DRIFT_FILE",
    "EPS",
    "GROUPS",
    "SCORE",
    "SCORE_TAIL",
    "DriftReference",
    "bin_edges",
    "bin_index",
    "build_reference",
    "feature_group",
    "psi",
    "psi_by_histogram",
    "search_table",
]

F64 = npt.NDArray[np.float64]
#: The reference's file, beside the bundle's manifest.
DRIFT_FILE: Final = "drift.json"
#: The histogram name of the calibrated score.
SCORE: Final = "score"
#: Floor of a bin's share in the PSI (an empty bin counts as this share).
EPS: Final = 1e-4
#: Extra quantiles of the score's edges (its tail, where the frauds are).
SCORE_TAIL: Final = (0.95, 0.99, 0.999)
#: Features that follow the clock, not the population: never monitored.
CALENDAR_FEATURES: Final = frozenset({"hour_of_day", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"})
_FORMAT: Final = 1
#: Features that count events per unit of time: they follow the traffic's daily cycle.
_VOLUME: Final = re.compile(r"^(tx_count|amount_sum|distinct_senders|high_amount_count)_|_NB_TX_")
#: Features read from the label feed (confirmed frauds, fraud shares, terminal risk).
_LABELS: Final = re.compile(r"fraud|_RISK_|_delayed$")
#: The groups of :func:`feature_group`.
GROUPS: Final = ("population", "volume", "labels", "score")


def feature_group(name: str) -> str:
    """The drift group of a histogram: ``score``, ``volume``, ``labels`` or ``population``.

    ``volume``: counts of events per unit of time (``tx_count_by_account_1h``…); they follow
    the traffic, which has a daily cycle (the simulator's counterparty counts per hour double
    from night to afternoon). ``labels``: features of the label feed (confirmed frauds…); they
    follow the labels' delays and keep growing until the feed covers their longest window plus
    the chargeback delay (weeks). Neither says the population of transactions changed.
    """
    if name == SCORE:
        return "score"
    if _LABELS.search(name):
        return "labels"
    return "volume" if _VOLUME.search(name) else "population"


def bin_edges(values: npt.NDArray[Any], bins: int = 10, tail: Sequence[float] = ()) -> F64:
    """The inner edges of ``values``' histogram (see the module's docstring), ascending.

    ``tail``: extra quantiles (e.g. ``(0.99,)``) added to the ``bins``-quantiles. NaN and ±inf
    take no part; with no finite value there is no edge (one value bin and the missing bin).
    """
    v = np.asarray(values)
    v = v[np.isfinite(v)]
    if not v.size:
        return np.empty(0, dtype=np.float64)
    distinct, counts = np.unique(v, return_counts=True)
    if len(distinct) <= bins:
        return distinct.astype(np.float64)
    heavy = distinct[counts > v.size / bins]
    rest = v[~np.isin(v, heavy)] if heavy.size else v
    parts = max(bins - heavy.size, 1)
    probs = np.arange(1, parts) / parts
    cuts = [heavy, np.nextafter(heavy, -np.inf)]  # each point mass alone in its bin
    if rest.size and probs.size:
        cuts.append(np.quantile(rest, probs, method="inverted_cdf").astype(v.dtype))
    if tail:
        cuts.append(np.quantile(v, np.asarray(tail), method="inverted_cdf").astype(v.dtype))
    return np.unique(np.concatenate(cuts)).astype(np.float64)


def search_table(edges: F64, dtype: npt.DTypeLike = np.float64) -> npt.NDArray[Any]:
    """``edges`` followed by +inf, in ``dtype``: what :func:`bin_index` searches."""
    return np.append(np.asarray(edges, dtype=dtype), np.asarray([np.inf], dtype=dtype))


def bin_index(values: npt.NDArray[Any], table: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """The bin of each value: ``0 … len(table) - 1`` by value, ``len(table)`` for NaN.

    ``table`` is :func:`search_table` of the edges (same dtype as ``values`` avoids a copy).
    NumPy orders NaN after +inf, so one ``searchsorted`` places the missing values too.
    """
    out: npt.NDArray[np.intp] = np.searchsorted(table, values, side="left")
    return out


def psi(expected: F64, counts: npt.NDArray[Any], eps: float = EPS) -> float:
    """PSI of the histogram ``counts`` against the reference shares ``expected``."""
    total = float(np.sum(counts))
    if total <= 0:
        raise ValueError("PSI of an empty histogram")
    a = np.maximum(np.asarray(counts, dtype=np.float64) / total, eps)
    e = np.maximum(expected, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_by_histogram(
    expected: F64, counts: npt.NDArray[Any], starts: npt.NDArray[np.intp], eps: float = EPS
) -> F64:
    """PSI of several histograms laid end to end (histogram ``h`` from ``starts[h]``), each
    normalised by its own total (all histograms here count the same rows)."""
    c = np.asarray(counts, dtype=np.float64)
    totals = np.add.reduceat(c, starts)
    sizes = np.diff(np.append(starts, len(c)))
    a = np.maximum(c / np.repeat(np.maximum(totals, 1.0), sizes), eps)
    e = np.maximum(expected, eps)
    out: F64 = np.add.reduceat((a - e) * np.log(a / e), starts)
    return out


@dataclass(frozen=True)
class DriftReference:
    """Per monitored feature and the score: bin edges and the reference share of each bin.

    ``names[h]`` is histogram ``h``: the monitored features in the bundle's order, then
    :data:`SCORE`; ``columns[h]`` the feature's column in the bundle's matrix (-1: the score).
    ``shares[h]`` has ``len(edges[h]) + 2`` entries (the value bins, then the missing bin).
    """

    names: tuple[str, ...]
    columns: tuple[int, ...]
    edges: tuple[F64, ...]
    shares: tuple[F64, ...]
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "rows": self.rows,
            "histograms": [
                {"name": n, "column": c, "edges": e.tolist(), "shares": s.tolist()}
                for n, c, e, s in zip(
                    self.names, self.columns, self.edges, self.shares, strict=True
                )
            ],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DriftReference:
        if doc.get("format") != _FORMAT:
            raise ModelError(f"drift reference format {doc.get('format')!r}, expected {_FORMAT}")
        hists = doc["histograms"]
        edges = tuple(np.asarray(h["edges"], dtype=np.float64) for h in hists)
        shares = tuple(np.asarray(h["shares"], dtype=np.float64) for h in hists)
        for h, e, s in zip(hists, edges, shares, strict=True):
            if len(s) != len(e) + 2:
                name = h["name"]
                raise ModelError(f"drift reference of {name!r}: {len(s)} shares, {len(e)} edges")
        return cls(
            names=tuple(str(h["name"]) for h in hists),
            columns=tuple(int(h["column"]) for h in hists),
            edges=edges,
            shares=shares,
            rows=int(doc["rows"]),
        )

    def save(self, directory: Path) -> None:
        (Path(directory) / DRIFT_FILE).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, directory: Path) -> DriftReference | None:
        """The reference saved in ``directory``; ``None`` if it has none."""
        path = Path(directory) / DRIFT_FILE
        if not path.exists():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read the drift reference {path}: {exc}") from exc


def build_reference(
    x: npt.NDArray[np.float32],
    score: F64,
    feature_names: Sequence[str],
    *,
    bins: int = 10,
) -> DriftReference:
    """The reference of the rows ``x`` (the bundle's feature matrix) and their ``score``."""
    columns = [j for j, n in enumerate(feature_names) if n not in CALENDAR_FEATURES]
    names = [feature_names[j] for j in columns] + [SCORE]
    values = [x[:, j] for j in columns] + [np.asarray(score, dtype=np.float64)]
    edges, shares = [], []
    for name, v in zip(names, values, strict=True):
        e = bin_edges(v, bins, SCORE_TAIL if name == SCORE else ())
        counts = np.bincount(bin_index(v, search_table(e, v.dtype)), minlength=len(e) + 2)
        edges.append(e)
        shares.append(counts / max(len(v), 1))
    return DriftReference(tuple(names), (*columns, -1), tuple(edges), tuple(shares), len(x))
