"""Time axes shared by every chart: UTC, 24-hour clock, whatever the browser's time zone.

Vega-Lite's default time labels are the browser's local time with a 12-hour clock ("03 PM",
or "03:15" with no AM/PM at all). A UTC scale formats ticks with ``utcFormat``, and the label
expression picks a 24-hour format by tick: ``14:05:30`` between minutes, ``14:05`` between days,
``02 Dec`` at midnight.
"""

from __future__ import annotations

from typing import Final

import altair as alt

__all__ = ["TIME_LABELS", "time_tooltip", "time_x"]

#: The axis label expression: a 24-hour UTC format chosen per tick.
TIME_LABELS: Final = (
    "utcFormat(datum.value, utcseconds(datum.value) ? '%H:%M:%S' : "
    "(utchours(datum.value) || utcminutes(datum.value)) ? '%H:%M' : '%d %b')"
)
#: Tooltip time units: the field read in UTC (``utc…`` units format with ``utcFormat``).
_UTC_UNIT: Final = "utcyearmonthdatehoursminutesseconds"


def time_x(field: str = "time", title: str = "time (UTC)") -> alt.X:
    """An x encoding for a temporal ``field`` holding UTC instants."""
    return alt.X(
        f"{field}:T",
        title=title,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(labelExpr=TIME_LABELS, labelOverlap=True),
    )


def time_tooltip(field: str = "time", fmt: str = "%Y-%m-%d %H:%M:%S") -> alt.Tooltip:
    """A tooltip showing ``field`` in UTC with the 24-hour ``fmt``."""
    return alt.Tooltip(f"{field}:T", timeUnit=_UTC_UNIT, format=fmt, title=f"{field} (UTC)")
