"""A card transaction's extra fields as model inputs: which a bundle uses, and how.

A declared extra field (``schema._declare``) travels as a message field and a file column
under its source name; :class:`CardExtras` says which of them a bundle reads and turns a batch's
raw values (``TxBatch.extras``: text, numbers, booleans as a file or a JSON message holds them)
into model inputs, the same way in training and in the detector:

- a **categorical** is its code in the vocabulary learned at training (0…V-1), ``V`` for a
  value unseen then, NaN when missing (a LightGBM categorical feature); its value's key feeds
  two per-customer aggregates kept by the card state (``_card_state._categories``): the share of
  the customer's earlier transactions of the last 30 days with this value, and the customer's
  distinct values in the last day;
- a **numeric** or **boolean** is its value (NaN when missing or invalid);
- two **latitude/longitude pairs** give the distance between them in km (NaN if one is missing).

A value of the wrong type or out of range is missing, never a dead letter.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraudstream.features._card_state import MISSING
from fraudstream.features._state import keys_of
from fraudstream.schema._cells import NULL_TOKENS
from fraudstream.schema._roles import EXTRA_KINDS, ExtraKind

__all__ = [
    "EARTH_RADIUS_KM",
    "MAX_CATEGORIES",
    "CardExtras",
    "ExtraField",
    "as_float",
    "as_text",
    "distance_km",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: A categorical keeps at most this many values (the most frequent); the others are unseen.
MAX_CATEGORIES: Final = 1000
EARTH_RADIUS_KM: Final = 6371.0088
_RANGE: Final = {"latitude": 90.0, "longitude": 180.0}
_TRUE: Final = frozenset(("true", "t", "yes", "y", "1"))
_FALSE: Final = frozenset(("false", "f", "no", "n", "0"))


@dataclass(frozen=True)
class ExtraField:
    """One extra field: its source name, kind, location pair (latitude/longitude) and, for a
    categorical, the vocabulary learned at training (code = position)."""

    name: str
    kind: ExtraKind
    pair: str | None = None
    vocabulary: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.pair is not None:
            out["pair"] = self.pair
        if self.kind == "categorical":
            out["vocabulary"] = list(self.vocabulary)
        return out


def as_text(value: object) -> str | None:
    """A categorical's value as text (None: missing), as the file reader reads its cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if not text or text.lower() in NULL_TOKENS else text


def as_float(value: object, kind: ExtraKind) -> float:
    """A numeric, boolean, latitude or longitude value as a float (NaN: missing or invalid)."""
    if isinstance(value, bool | int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if kind == "boolean" and text in _TRUE | _FALSE:
            return 1.0 if text in _TRUE else 0.0
        try:
            number = float(text)
        except ValueError:
            return math.nan
    else:
        return math.nan
    if not math.isfinite(number):
        return math.nan
    if kind == "boolean" and number not in (0.0, 1.0):
        return math.nan
    if kind in _RANGE and abs(number) > _RANGE[kind]:
        return math.nan
    return number


def distance_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Great-circle (haversine) distance in km; NaN where a coordinate is NaN."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: F64 = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


@dataclass(frozen=True)
class CardExtras:
    """The extra fields a card bundle reads, in a fixed order (see the module docstring).

    >>> spec = CardExtras((ExtraField("channel", "categorical", vocabulary=("pos", "online")),))
    >>> spec.feature_names
    ('channel', 'channel_share_by_customer_30d', 'channel_distinct_by_customer_1d')
    """

    fields: tuple[ExtraField, ...] = ()
    _by_kind: dict[str, tuple[ExtraField, ...]] = field(init=False, repr=False, compare=False)
    _codes: list[dict[str, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kind = {k: tuple(f for f in self.fields if f.kind == k) for k in EXTRA_KINDS}
        object.__setattr__(self, "_by_kind", by_kind)
        codes = [{v: float(i) for i, v in enumerate(f.vocabulary)} for f in by_kind["categorical"]]
        object.__setattr__(self, "_codes", codes)

    @classmethod
    def learn(
        cls,
        declared: Sequence[ExtraField],
        values: Mapping[str, Sequence[object]],
        max_categories: int = MAX_CATEGORIES,
    ) -> CardExtras:
        """The fields ``declared``, each categorical with the vocabulary of its ``values``
        (the most frequent first, at most ``max_categories``; ties by value)."""
        fields = []
        for f in sorted(declared, key=lambda f: f.name):
            if f.kind == "categorical":
                counts = Counter(t for v in values.get(f.name, ()) if (t := as_text(v)) is not None)
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                f = ExtraField(
                    f.name, f.kind, vocabulary=tuple(v for v, _ in ranked[:max_categories])
                )
            fields.append(f)
        return cls(tuple(fields))

    @classmethod
    def from_dicts(cls, items: Sequence[Mapping[str, Any]]) -> CardExtras:
        """The fields of :meth:`as_dicts` (a bundle's manifest)."""
        return cls(
            tuple(
                ExtraField(d["name"], d["kind"], d.get("pair"), tuple(d.get("vocabulary", ())))
                for d in items
            )
        )

    def as_dicts(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.fields]

    def __bool__(self) -> bool:
        return bool(self.fields)

    @property
    def categoricals(self) -> tuple[ExtraField, ...]:
        return self._by_kind["categorical"]

    @property
    def values(self) -> tuple[ExtraField, ...]:
        """The numeric and boolean fields (model inputs as they are)."""
        return tuple(f for f in self.fields if f.kind in ("numeric", "boolean"))

    @property
    def pairs(self) -> dict[str, tuple[str, str]]:
        """Location name -> its (latitude, longitude) fields, for complete pairs."""
        lat = {f.pair: f.name for f in self._by_kind["latitude"]}
        lon = {f.pair: f.name for f in self._by_kind["longitude"]}
        both = {p for p in set(lat) & set(lon) if p is not None}
        return {p: (lat[p], lon[p]) for p in sorted(both)}

    @property
    def names_read(self) -> tuple[str, ...]:
        """The message fields (and file columns) the features read."""
        return tuple(f.name for f in self.fields)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The columns these fields add to the card features, in order."""
        aggregates = [
            f"{f.name}_{what}" for f in self.categoricals
            for what in ("share_by_customer_30d", "distinct_by_customer_1d")
        ]  # fmt: skip
        distances = [f"distance_km_{a}_{b}" for a, b in combinations(self.pairs, 2)]
        return (
            *(f.name for f in self.categoricals),
            *(f.name for f in self.values),
            *distances,
            *aggregates,
        )

    @property
    def categorical_features(self) -> tuple[str, ...]:
        """The feature columns LightGBM reads as categories."""
        return tuple(f.name for f in self.categoricals)

    def encode(self, values: Mapping[str, Sequence[object]], n: int) -> tuple[I64, F64]:
        """For ``n`` rows of raw ``values``: the key of each categorical's value
        (:data:`MISSING` when absent), which the card state keeps; and the stateless columns
        (codes, numeric values, distances: ``feature_names`` up to the aggregates)."""
        keys = np.full((n, len(self.categoricals)), MISSING, dtype=np.int64)
        cols: list[F64] = []
        for j, f in enumerate(self.categoricals):
            text = [as_text(v) for v in values.get(f.name, [None] * n)]
            hashed = keys_of(["" if t is None else t for t in text])
            hashed[hashed == MISSING] = 1  # MISSING is reserved for absent values
            present = np.fromiter((t is not None for t in text), dtype=np.bool_, count=n)
            keys[:, j] = np.where(present, hashed, MISSING)
            index, unseen = self._codes[j], float(len(f.vocabulary))
            codes = [math.nan if t is None else index.get(t, unseen) for t in text]
            cols.append(np.array(codes, dtype=np.float64))
        for f in self.values:
            cols.append(self._floats(values, f, n))
        located = {f.name: f for f in self.fields}
        points = {
            p: (self._floats(values, located[a], n), self._floats(values, located[b], n))
            for p, (a, b) in self.pairs.items()
        }
        for a, b in combinations(points, 2):
            cols.append(distance_km(*points[a], *points[b]))
        row = np.column_stack(cols) if cols else np.empty((n, 0), dtype=np.float64)
        return keys, row

    @staticmethod
    def _floats(values: Mapping[str, Sequence[object]], f: ExtraField, n: int) -> F64:
        raw = values.get(f.name, [None] * n)
        return np.fromiter((as_float(v, f.kind) for v in raw), dtype=np.float64, count=n)
