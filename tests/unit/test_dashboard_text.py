"""The dashboard's text helpers: inert values from data, units, reason sentences, identity, and
24-hour UTC time axes on every chart."""

from __future__ import annotations

import doctest
import json
import unicodedata
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraudstream.dashboard import _alerts, _charts, _live, _text, _trends
from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._text import (
    BIDI_CONTROLS,
    csv_cell,
    csv_column,
    describe_reason,
    fmt_feature_value,
    header_user,
    md,
    safe_text,
)

T0 = 1_700_000_000_000


def test_doctests() -> None:
    assert doctest.testmod(_text).failed == 0


@pytest.mark.parametrize("char", list(BIDI_CONTROLS) + ["\x00", "\n", "\x1b", "\x85", "\u2028"])
def test_safe_text_shows_every_control_character_as_its_code(char: str) -> None:
    shown = safe_text(f"47,527.26{char}X")
    assert shown == f"47,527.26[U+{ord(char):04X}]X"
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in shown)


def test_every_bidi_control_of_the_issue_is_covered() -> None:
    wanted = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F]
    assert {chr(c) for c in wanted} <= set(BIDI_CONTROLS)
    assert safe_text("Zoë → 東京 ½") == "Zoë → 東京 ½"  # ordinary text is untouched


def test_md_leaves_no_markdown_syntax_active() -> None:
    hostile = "# H ![i](http://evil.example/i.png) [l](http://evil.example) **b** `c` <b>x</b>"
    escaped = md(hostile)
    # every ASCII punctuation character is backslash-escaped, so CommonMark reads it literally
    unescaped = [
        c
        for i, c in enumerate(escaped)
        if c.isascii() and not c.isalnum() and c not in " \\" and escaped[i - 1] != "\\"
    ]
    assert unescaped == []
    assert escaped.replace("\\", "").replace("\u2060", "") == hostile


def test_md_breaks_every_automatic_link() -> None:
    """GFM links bare URLs, www. names and e-mail addresses even with punctuation escaped."""
    escaped = md("http://evil.example/ HTTPS://e.example www.e.example a@e.example").replace(
        "\\", ""
    )
    for trigger in ("://", "www.", "@e"):
        assert trigger not in escaped
    assert escaped.replace("\u2060", "") == (
        "http://evil.example/ HTTPS://e.example www.e.example a@e.example"
    )


def test_csv_cells_never_start_a_formula() -> None:
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-2+3") == "'-2+3"
    assert csv_cell("C123\u202e") == "C123[U+202E]"
    values = ["=1+1", "C1", "\tx", "+A\u202e", "", "a=b"]
    column = csv_column(pd.Series([*values, None]))
    assert column.tolist() == [*(csv_cell(v) for v in values), ""]
    assert csv_column(pd.Series(["plain", "text"])).tolist() == ["plain", "text"]


@pytest.mark.parametrize(
    ("feature", "value", "shown"),
    [
        ("amount", 9870.0, "9,870.00 EUR"),
        ("amount_vs_mean_by_account", 12.34, "12.3×"),
        ("received_amount_ratio", 0.5, "0.50×"),
        ("kind_transfer", 1.0, "yes"),
        ("kind_payment", 0.0, "no"),
        ("tx_count_by_account_1h", 7.0, "7"),
        ("seconds_since_last_by_account", 42.0, "42 s"),
        ("seconds_since_last_by_account", 5_400.0, "1.5 h"),
        ("seconds_since_last_by_account", 7 * 86_400.0, "at least 7.0 days"),
        ("seconds_since_last_by_account", 14 * 86_400.0, "never"),
        ("hour_of_day", 3.0, "03:00–03:59"),
        ("TERMINAL_ID_RISK_7DAY_WINDOW", 0.25, "25.0%"),
        ("days_since_terminal_fraud_delayed", 2.5, "2.5 days"),
        ("log_amount", 9.2, "9.20"),
        ("amount", float("nan"), "unknown"),
    ],
)
def test_feature_values_read_in_their_unit(feature: str, value: float, shown: str) -> None:
    assert fmt_feature_value(feature, value, "EUR") == shown


def test_a_reason_names_the_feature_its_value_and_its_direction() -> None:
    why = {"feature": "kind_payment", "value": 0.0, "contribution": 0.8}
    assert describe_reason(why, "CU") == "Type is PAYMENT: no (raises risk, +0.80 log-odds)"
    down = {"feature": "amount", "value": 12.5, "contribution": -0.25}
    assert describe_reason(down, "CU") == "Amount: 12.50 CU (lowers risk, -0.25 log-odds)"
    odd = {"feature": "user\u202efield", "value": None, "contribution": 0.0}
    assert describe_reason(odd, "CU") == (
        "user[U+202E]field: unknown (no effect on the score, +0.00 log-odds)"
    )


def test_the_proxy_user_comes_only_from_the_configured_header_as_inert_text() -> None:
    headers = {"Host": "x", "X-Auth-Request-User": " ana\u202e "}
    assert header_user(headers, "x-auth-request-user") == "ana[U+202E]"
    # a header nobody configured is ignored: a client could send it
    assert header_user(headers, "") == ""
    assert header_user({"X-Forwarded-User": ""}, "X-Forwarded-User") == ""
    assert header_user({"X-Forwarded-User": "x" * 500}, "X-Forwarded-User") == "x" * 100


def _specs() -> list[dict[str, Any]]:
    times = pd.Series([T0, T0 + 60_000])
    series = pd.DataFrame(
        {"window_end_ms": times, "window_ms": 30_000, "transactions": [10, 20], "frauds": [1, 0]}
    )
    alerts = pd.DataFrame({"minute_ms": times, "decision": ["review", "block"], "alerts": [1, 2]})
    trend = pd.DataFrame({"bucket_ms": times, "fraud_rate": [0.1, 0.2]})
    charts = [
        _live._throughput_chart(series),
        _live._alerts_chart(alerts),
        _live._fraud_rate_chart(series),
        _trends._line(trend, "fraud_rate", "Fraud share", "fraud share", "%"),
    ]
    return [c.to_dict() for c in charts]


def test_every_time_axis_is_utc_with_a_24_hour_clock() -> None:
    for spec in _specs():
        x = spec["encoding"]["x"]
        assert x["type"] == "temporal"
        assert x["scale"] == {"type": "utc"}
        assert x["axis"]["labelExpr"] == _charts.TIME_LABELS
        times = [t for t in spec["encoding"]["tooltip"] if t.get("type") == "temporal"]
        assert times and all(t["timeUnit"].startswith("utc") for t in times)
        text = json.dumps(spec)
        assert "%I" not in text and "%p" not in text  # no 12-hour clock anywhere


def test_reasons_chart_reads_labels_not_feature_names() -> None:
    alert = q.AlertRow(
        "t1", "t1", T0, T0, "A", "M", 10.0, 0.9, "block",
        [{"feature": "amount_vs_mean_by_account", "value": 12.0, "contribution": 1.0}],
        "v1", "open", None, None,
    )  # fmt: skip
    spec = _alerts._reasons_chart(alert, "EUR").to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert rows == [
        {
            "reason": "Amount relative to the account's mean",
            "contribution": 1.0,
            "explained": "Amount relative to the account's mean: 12.0× "
            "(raises risk, +1.00 log-odds)",
        }
    ]
