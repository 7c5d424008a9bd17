"""The documented bounds of a transaction's fields, and the batch checks msgspec cannot express.

Numbers are bounded inside the msgspec structs (checked in C while decoding). What needs a
column of the batch is checked here after decoding, vectorised over the batch: event time
against fixed limits and against the record's broker timestamp, and text fields for characters a
store or a screen cannot keep (one ``str.isprintable`` over all values of a field; a record is
looked at on its own only when its field fails).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_AMOUNT",
    "MAX_BALANCE",
    "MAX_EVENT_TIME_MS",
    "MAX_FUTURE_SKEW_MS",
    "MAX_ID_CHARS",
    "MAX_STEP",
    "ahead_reason",
    "check_batch",
]

#: Largest accepted ``amount`` (a trillion in the account's currency); ``amount >= 0``.
MAX_AMOUNT: Final = 1e12
#: Largest accepted balance (PaySim's largest is ~3.6e8); balances are ``>= 0``.
MAX_BALANCE: Final = 1e15
#: Largest accepted PaySim ``step`` (hours): about 114 years, so ``step`` hours in ms stays in
#: the event-time range.
MAX_STEP: Final = 1_000_000
#: Event times are ``>= 0`` and before 2100-01-01T00:00Z (ms since the epoch). There is no
#: later lower bound: this project's simulator writes histories that start at the epoch.
MAX_EVENT_TIME_MS: Final = 4_102_444_800_000
#: An event time at most this far ahead of its record's broker timestamp (one day): the default
#: of a transaction's ``max_future_skew_ms`` (a detector setting) and the bound of label times.
MAX_FUTURE_SKEW_MS: Final = 86_400_000
#: Longest account, counterparty, customer, terminal, transaction id or scenario name.
MAX_ID_CHARS: Final = 64

_US_FROM: Final = 10**14  # ms past year 5138: a microsecond time (after 1973) instead
_NS_FROM: Final = 10**17


def ahead_reason(name: str, t: int, ts: int, max_skew_ms: int) -> str:
    """Why ``name`` = ``t`` is rejected as more than ``max_skew_ms`` ahead of broker time ``ts``."""
    hours = (t - ts) / 3_600_000
    return (
        f"{name} {t} is {hours:,.1f} h ahead of the record's broker timestamp {ts} "
        f"(at most {max_skew_ms / 3_600_000:,.6g} h allowed); check the producer's clock"
    )


def _time_reason(name: str, t: int, ts: int, max_skew_ms: int) -> str:
    if t >= _NS_FROM:
        return f"{name} {t} looks like nanoseconds; send milliseconds since the epoch"
    if t >= _US_FROM:
        return f"{name} {t} looks like microseconds; send milliseconds since the epoch"
    if t >= MAX_EVENT_TIME_MS:
        return f"{name} {t} is in 2100 or later; send milliseconds since the epoch"
    return ahead_reason(name, t, ts, max_skew_ms)


def _bad_times(
    times: npt.NDArray[np.int64], broker_ts_ms: npt.NDArray[np.int64] | None, max_skew_ms: int
) -> npt.NDArray[np.bool_]:
    """Rows whose event time (``-1``: none sent) breaks the fixed or broker-relative bound."""
    bad = times >= MAX_EVENT_TIME_MS
    if broker_ts_ms is not None:
        # a record without a broker timestamp (-1) is held to the fixed bound only
        ahead = (times >= 0) & (broker_ts_ms > 0) & (times - broker_ts_ms > max_skew_ms)
        bad |= ahead
    return bad


def _text_reason(name: str, value: str) -> str:
    at, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
    return (
        f"{name} contains the non-printable character U+{ord(char):04X} at index {at}; "
        "ids and names must be printable text (no control or format characters)"
    )


def _may_hide_controls(raw: bytes) -> bool:
    """Whether decoded strings of the JSON ``raw`` can hold a non-printable character.

    JSON forbids raw control bytes inside strings (the decoder rejects them), so only an escape,
    a DEL byte or a non-ASCII character can produce one.
    """
    return b"\\" in raw or b"\x7f" in raw or not raw.isascii()


def _bad_text(
    records: Sequence[Any], raw: Sequence[bytes | None], text_fields: Sequence[str]
) -> dict[int, str]:
    """``raw`` holds the records' JSON (all decoded, so none is ``None``)."""
    if not _may_hide_controls(b"".join(raw)):  # type: ignore[arg-type]  # one scan: common case
        return {}
    bad: dict[int, str] = {}
    for i, value in enumerate(raw):
        if value is None or not _may_hide_controls(value):
            continue
        for name in text_fields:
            text = getattr(records[i], name)
            if text and not text.isprintable():
                bad[i] = _text_reason(name, text)
                break
    return bad


def check_batch(
    records: Sequence[Any],
    raw: Sequence[bytes | None],
    *,
    text_fields: Sequence[str],
    time_field: str,
    broker_ts_ms: npt.NDArray[np.int64] | None,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
) -> dict[int, str]:
    """The rows of ``records`` (decoded from ``raw``) that break a batch bound, with the reason.

    ``text_fields`` must hold printable text (``None`` allowed); ``time_field`` (an int or
    ``None``) must be below :data:`MAX_EVENT_TIME_MS` and at most ``max_future_skew_ms``
    ahead of ``broker_ts_ms`` (one per record, ``-1`` or ``0`` when the broker has none; without
    ``broker_ts_ms`` only the fixed bound is checked: the detector leaves the broker-relative
    bound of transactions to its event-time guard, ``stream._guard``).
    """
    bad = _bad_text(records, raw, text_fields)
    column = list(map(operator.attrgetter(time_field), records))
    if None in column:
        column = [-1 if t is None else t for t in column]
    times = np.array(column, dtype=np.int64)
    rows = np.flatnonzero(_bad_times(times, broker_ts_ms, max_future_skew_ms))
    for i in rows.tolist():
        ts = -1 if broker_ts_ms is None else int(broker_ts_ms[i])
        bad.setdefault(i, _time_reason(time_field, int(times[i]), ts, max_future_skew_ms))
    return bad
