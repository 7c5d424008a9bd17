"""PostgreSQL binary ``COPY`` of enriched rows, built column by column from a ``ScoredBatch``.

The numeric columns and the ``real[]`` features of every row are laid out at once in a numpy
structured array (big-endian, with the binary format's length words); only the text columns
(ids, kind, decision, the rules fired) are encoded per row. NaN balances and scores and unknown
labels (``-1``) become NULL; NaN and ±inf inside the features array are kept as such (``real``
holds them).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraudstream.schema import DECISIONS, KINDS, ScoredBatch
from fraudstream.sinks._rows import check_lengths, rule_columns

__all__ = ["ENRICHED_COPY_COLUMNS", "binary_copy", "enriched_copy"]

#: Column order of the binary stream: fixed-width columns first, then the text columns.
ENRICHED_COPY_COLUMNS: Final = (
    "event_time_ms, amount, old_balance_orig, new_balance_orig, old_balance_dest, "
    'new_balance_dest, label, step, score, "partition", "offset", processed_at_ms, features, '
    "model_version, tx_id, account, counterparty, kind, decision, "
    "rule_set_version, rules_fired, rules_shadow"
)
_N_COLUMNS: Final = 22
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # flags 0, no header extension
_TRAILER: Final = b"\xff\xff"
_FLOAT4_OID: Final = 700
_NULL: Final = -1
_len_word = struct.Struct(">i").pack
_NULL_PIECE: Final = _len_word(_NULL)


def _text_piece(value: str) -> bytes:
    data = value.encode()
    return _len_word(len(data)) + data


_KIND_PIECES: Final = np.asarray([_text_piece(k) for k in KINDS], dtype=object)
_DECISION_PIECES: Final = np.asarray([_text_piece(d) for d in DECISIONS], dtype=object)

#: The nullable numeric columns: (name, binary type); a NULL is only a -1 length word.
_NULLABLE: Final = (
    ("old_balance_orig", ">f8"),
    ("new_balance_orig", ">f8"),
    ("old_balance_dest", ">f8"),
    ("new_balance_dest", ">f8"),
    ("label", ">i2"),
    ("score", ">f8"),
)


def _dtype(nulls: Sequence[bool], n_features: int, version_len: int) -> np.dtype[Any]:
    """The packed layout of the fixed-width part of a row with NULLs where ``nulls`` says."""
    null = dict(zip((name for name, _ in _NULLABLE), nulls, strict=True))
    columns = [
        ("event_time_ms", ">i8"),
        ("amount", ">f8"),
        *_NULLABLE[:5],
        ("step", ">i8"),
        _NULLABLE[5],
        ("partition", ">i4"),
        ("offset", ">i8"),
        ("processed_at_ms", ">i8"),
    ]
    fields: list[tuple[Any, ...]] = [("ncols", ">i2")]
    for name, kind in columns:
        fields.append((f"{name}_len", ">i4"))
        if not null.get(name, False):
            fields.append((name, kind))
    fields += [
        ("features_len", ">i4"),
        ("features_head", ">i4", (5,)),  # ndim, has-null flag, element type, size, lower bound
        ("features", [("len", ">i4"), ("value", ">f4")], (n_features,)),
        ("version_len", ">i4"),
    ]
    if version_len:
        fields.append(("version", f"S{version_len}"))
    return np.dtype(fields)


def _null_masks(batch: ScoredBatch) -> npt.NDArray[np.bool_]:
    """Per row, which nullable columns are NULL: shape ``(rows, len(_NULLABLE))``."""
    tx = batch.tx
    return np.column_stack(
        [
            np.isnan(tx.old_balance_orig),
            np.isnan(tx.new_balance_orig),
            np.isnan(tx.old_balance_dest),
            np.isnan(tx.new_balance_dest),
            tx.label < 0,
            np.isnan(batch.score),
        ]
    )


def _fixed_part(
    batch: ScoredBatch,
    rows: npt.NDArray[np.intp] | slice,
    nulls: Sequence[bool],
    features: npt.NDArray[np.float32],
    version: bytes,
) -> bytes:
    """The fixed-width part of ``rows`` (all sharing the NULL pattern ``nulls``), packed."""
    tx = batch.tx
    values: dict[str, Any] = {
        "event_time_ms": tx.event_time_ms[rows],
        "amount": tx.amount[rows],
        "old_balance_orig": tx.old_balance_orig[rows],
        "new_balance_orig": tx.new_balance_orig[rows],
        "old_balance_dest": tx.old_balance_dest[rows],
        "new_balance_dest": tx.new_balance_dest[rows],
        "label": tx.label[rows],
        "step": tx.step[rows],
        "score": batch.score[rows],
        "partition": batch.partition[rows],
        "offset": batch.offset[rows],
        "processed_at_ms": batch.processed_at_ms,
    }
    x = features[rows]
    dtype = _dtype(nulls, x.shape[1], len(version))
    out = np.empty(len(x), dtype=dtype)
    out["ncols"] = _N_COLUMNS
    for name, value in values.items():
        if name in dtype.names:  # type: ignore[operator]
            out[name] = value
            out[f"{name}_len"] = dtype[name].itemsize
        else:
            out[f"{name}_len"] = _NULL
    out["features_len"] = dtype["features_head"].itemsize + dtype["features"].itemsize
    out["features_head"] = (1, 0, _FLOAT4_OID, x.shape[1], 1)
    out["features"]["len"] = 4
    out["features"]["value"] = x
    out["version_len"] = len(version)
    if version:
        out["version"] = version
    return out.tobytes()


def _text_pieces(values: Sequence[str]) -> list[bytes]:
    return [_text_piece(v) for v in values]


def _nullable_text_pieces(values: Sequence[str | None]) -> list[bytes]:
    if not any(values):  # no rule fired in the batch
        return [_NULL_PIECE] * len(values)
    return [_NULL_PIECE if v is None else _text_piece(v) for v in values]


def _int4_piece(value: int | None) -> bytes:
    return _NULL_PIECE if value is None else _len_word(4) + _len_word(value)


def binary_copy(rows: Sequence[bytes]) -> bytes:
    """A complete binary ``COPY`` stream: the signature, ``rows`` (encoded tuples), the trailer."""
    return b"".join(chain((_SIGNATURE,), rows, (_TRAILER,)))


def enriched_copy(batch: ScoredBatch, feature_order: npt.NDArray[np.intp] | None = None) -> bytes:
    """The tuples of ``batch`` for ``COPY … (ENRICHED_COPY_COLUMNS) FROM STDIN (FORMAT binary)``.

    ``feature_order`` (optional) permutes the feature columns into the stored order. Wrap one or
    more of these in ``binary_copy`` to send them.
    """
    check_lengths(batch)
    n = len(batch)
    features = np.ascontiguousarray(
        batch.features if feature_order is None else batch.features[:, feature_order],
        dtype=np.float32,
    )
    version = batch.model_version.encode()
    masks = _null_masks(batch)
    codes = masks @ (1 << np.arange(masks.shape[1]))
    patterns, first = np.unique(codes, return_index=True)
    fixed: list[bytes] = [b""] * n
    for pattern, at in zip(patterns.tolist(), first.tolist(), strict=True):
        rows = np.flatnonzero(codes == pattern) if len(patterns) > 1 else slice(None)
        raw = _fixed_part(batch, rows, masks[at].tolist(), features, version)
        width = len(raw) // (n if isinstance(rows, slice) else len(rows))
        index = range(n) if isinstance(rows, slice) else rows.tolist()
        for j, i in enumerate(index):
            fixed[i] = raw[j * width : (j + 1) * width]
    tx = batch.tx
    fired, shadow, rule_set_version = rule_columns(batch)
    pieces = zip(
        fixed,
        _text_pieces(tx.tx_id),
        _text_pieces(tx.account),
        _text_pieces(tx.counterparty),
        _KIND_PIECES[tx.kind].tolist(),
        _DECISION_PIECES[batch.decision].tolist(),
        repeat(_int4_piece(rule_set_version), n),
        _nullable_text_pieces(fired),
        _nullable_text_pieces(shadow),
        strict=True,
    )
    return b"".join(chain.from_iterable(pieces))
