"""Passwords and tokens inside URLs never reach a log line or a page: ``fraudstream._redact``."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from fraudstream._redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres:SeCrEt123@127.0.0.1:5432/test",
            "postgresql://postgres:***@127.0.0.1:5432/test",
        ),
        ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),  # unencoded @
        ("postgresql://u:p%40ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("https://user:tok@hooks.example/x", "https://user:***@hooks.example/x"),
        ("http://127.0.0.1:8080/hook?token=SeCrEt456", "http://127.0.0.1:8080/hook?token=***"),
        (
            "https://h/x?api_key=a&access_token=b&apiKey=c&sig=d&id=7",
            "https://h/x?api_key=***&access_token=***&apiKey=***&sig=***&id=7",
        ),
        (
            "https://s3/o?X-Amz-Date=20240101&X-Amz-Signature=abc&client_secret=z",
            "https://s3/o?X-Amz-Date=20240101&X-Amz-Signature=***&client_secret=***",
        ),
        ("https://h/cb#access_token=q&state=1", "https://h/cb#access_token=***&state=1"),
        (
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T00000000/B00000000/***",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-JKL0123456789abcdef",
            "https://discord.com/api/webhooks/123456789012345678/***",
        ),
        ("https://h/hook/a1b2c3d4e5f6g7h8?x=1", "https://h/hook/***?x=1"),
    ],
)
def test_redact_hides_passwords_and_tokens(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///data/fraudstream.db",
        "sqlite:////tmp/run-20240101T000000Z/fraudstream.db",
        "postgresql://postgres@127.0.0.1:5432/test",
        "http://127.0.0.1:8501/alerts?page=2&account=C123",
        "http://h:8080/p?email=a@b.example&x=1",  # an @ after the path is no userinfo
        "https://h/api/webhooks/123456789012345678",  # an id of digits is no token
        "127.0.0.1:9092, no URL here: key=value",
        "",
    ],
)
def test_redact_leaves_what_is_not_secret(text: str) -> None:
    assert redact(text) == text


def test_redact_finds_urls_inside_text() -> None:
    text = (
        "store 'postgresql://u:pw1@db:5432/x' failed; webhook http://h/x?token=t0k "
        "answered HTTP 500 (see <https://a:pw2@b/c>)"
    )
    out = redact(text)
    assert out == (
        "store 'postgresql://u:***@db:5432/x' failed; webhook http://h/x?token=*** "
        "answered HTTP 500 (see <https://a:***@b/c>)"
    )
    assert redact(out) == out  # idempotent


@pytest.fixture
def filtered() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose only handler (writing to the returned stream) has the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact.filter")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_filter_redacts_every_record_of_a_handler(
    filtered: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = filtered
    logger.warning("store %s, group %s", "postgresql://postgres:SeCrEt123@h/db", "g")
    logger.warning("plain %d%%", 5)
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["store postgresql://postgres:***@h/db, group g", "plain 5%"]
    assert "SeCrEt123" not in stream.getvalue()
    bad = logging.makeLogRecord({"msg": "bad format %s %s", "args": ("only-one",)})
    assert RedactingFilter().filter(bad)  # kept: the handler reports a broken format


def test_filter_redacts_a_traceback_that_holds_a_secret(
    filtered: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = filtered
    try:
        raise ConnectionError("cannot reach https://u:SeCrEt9@h/x?token=SeCrEt8")
    except ConnectionError:
        logger.exception("store failed")
    try:
        raise ValueError("nothing secret")
    except ValueError:
        logger.exception("other")
    text = stream.getvalue()
    assert "SeCrEt" not in text
    assert "ConnectionError: cannot reach https://u:***@h/x?token=***" in text
    assert "ValueError: nothing secret" in text  # a traceback without secrets stays as it is
