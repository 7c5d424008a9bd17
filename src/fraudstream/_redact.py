"""Secrets out of text: passwords and tokens inside URLs, before a URL is logged or shown.

``redact`` is pure and works on a bare URL or on any text that contains URLs (a log line, an
error message). In every ``scheme://…`` URL it replaces

- the password of the userinfo: ``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``
  (the authority ends at the last ``@`` before ``/``, ``?`` or ``#``, so an unencoded ``@`` in a
  password is hidden too; ``/``, ``?`` and ``#`` in a password must be percent-encoded, as
  RFC 3986 and libpq require);
- the value of secret-looking query (or fragment) parameters (``token``, ``key``, ``secret``,
  ``password``, ``signature``, ``sig``, ``api_key``, ``access_token``, ``X-Amz-Signature`` …);
- in ``http(s)`` paths, segments that look like tokens, as Slack, Discord and Teams webhooks carry
  them (``/services/T0/B0/<24 characters>``): 24 or more of ``[A-Za-z0-9_-]``, or 16 or more
  with a digit and a letter.

``RedactingFilter`` applies it to every record passing a logging handler.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["RedactingFilter", "redact"]

MASK: Final = "***"

#: A URL inside text: a scheme, ``://`` and what follows up to whitespace, a quote or a bracket.
_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*")
#: ``scheme://`` then the userinfo up to the authority's last ``@`` (before ``/ ? #``).
_USERINFO: Final = re.compile(r"^([^:]+://)([^/?#]*)@")
_PARAM: Final = re.compile(r"([?&;#])([^=&;#]+)=([^&;#]*)")
_SEGMENT: Final = re.compile(
    r"(?<=/)(?:[A-Za-z0-9_-]{24,}|(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,})"
    r"(?=[/?#]|$)"
)
_SECRET_WORDS: Final = ("token", "secret", "passw", "apikey", "signature", "credential")
_SECRET_ENDINGS: Final = ("key", "sig", "pwd", "pass", "auth", "jwt", "session", "code")


def redact(text: str) -> str:
    """``text`` with the passwords and tokens of every URL in it replaced by ``***``.

    >>> redact("postgresql://postgres:SeCrEt@127.0.0.1:5432/test")
    'postgresql://postgres:***@127.0.0.1:5432/test'
    >>> redact("webhook https://h.example/hook?id=7&token=abc unreachable")
    'webhook https://h.example/hook?id=7&token=*** unreachable'
    """
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _redact_url(m.group()), text)


def _redact_url(url: str) -> str:
    url = _USERINFO.sub(_mask_userinfo, url, count=1)
    start = url.find("://") + 3
    path_end = min((i for i in (url.find("?", start), url.find("#", start)) if i >= 0), default=-1)
    head, tail = (url, "") if path_end < 0 else (url[:path_end], url[path_end:])
    if url[:start].lower() in ("http://", "https://"):
        slash = head.find("/", start)
        if slash >= 0:
            head = head[:slash] + _SEGMENT.sub(MASK, head[slash:])
    return head + _PARAM.sub(_mask_param, tail)


def _mask_userinfo(m: re.Match[str]) -> str:
    scheme, userinfo = m.group(1), m.group(2)
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}{user}:{MASK}@" if colon else m.group()


def _mask_param(m: re.Match[str]) -> str:
    sep, name, value = m.group(1), m.group(2), m.group(3)
    return f"{sep}{name}={MASK}" if value and _secret_name(name) else m.group()


def _secret_name(name: str) -> bool:
    """Whether a query parameter's name says its value is a secret (``access_token``, ``sig``)."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return any(w in key for w in _SECRET_WORDS) or key.endswith(_SECRET_ENDINGS)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts URLs in every record's message and traceback (a safety
    net: the places that log a URL redact it themselves). The record is rewritten, never
    dropped; a traceback that held a secret becomes redacted text after the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format is the handler's to report
            return True
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            trace = _FORMATTER.formatException(record.exc_info)
            if redact(trace) != trace:
                cleaned = f"{cleaned}\n{redact(trace)}"
                record.exc_info, record.exc_text = None, None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FORMATTER: Final = logging.Formatter()
