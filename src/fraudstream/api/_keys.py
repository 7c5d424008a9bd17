"""API keys: who may call the decision API, and for what (scopes ``decide``, ``label``, ``read``).

A key is ``fsk_<key id>_<secret>``: the id (12 hex digits) finds the row, the secret (256 random
bits) proves possession. The store keeps only the SHA-256 of the secret (a secret this long needs
no slow hash), compared in constant time; the secret is shown once, at creation, and never
logged. :class:`KeyChecker` caches rows for ``cache_s``, so a revocation takes effect within it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from fraudstream.dashboard import Database
from fraudstream.errors import ConfigError

__all__ = [
    "SCOPES",
    "ApiKey",
    "KeyChecker",
    "NewKey",
    "Scope",
    "create_key",
    "list_keys",
    "parse_scopes",
    "revoke_key",
]

Scope = Literal["decide", "label", "read"]
#: What a key may do: ask for decisions, send labels, read transactions and alerts.
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
_PREFIX: Final = "fsk"
_ID_HEX: Final = 12
_TOKEN: Final = re.compile(rf"^{_PREFIX}_([0-9a-f]{{{_ID_HEX}}})_([A-Za-z0-9_-]{{43}})$")
_NAME: Final = re.compile(r"^[\w.@:-]{1,64}$")
_DUMMY: Final = hashlib.sha256(b"no such key").hexdigest()
_MAX_CACHED: Final = 10_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at_ms: int
    revoked_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: ``token`` is what the client sends, shown once and kept nowhere."""

    key: ApiKey
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> tuple[Scope, ...]:
    """``"decide,read"`` (or a sequence) as scopes, in :data:`SCOPES` order; ``ConfigError``
    names an unknown one."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    unknown = sorted({n for n in names if n and n not in SCOPES})
    if unknown or not any(names):
        raise ConfigError(
            f"unknown scope(s) {unknown or names}; use one or more of {', '.join(SCOPES)}"
        )
    return tuple(s for s in SCOPES if s in names)


def create_key(db: Database, name: str, scopes: Sequence[Scope]) -> NewKey:
    """Store a new key named ``name`` with ``scopes``; the token is returned, not stored."""
    if not _NAME.match(name):
        raise ConfigError(
            f"key name {name!r}: 1 to 64 letters, digits or . _ @ : - (e.g. the client's name)"
        )
    scopes = parse_scopes(scopes)
    key_id, secret = secrets.token_hex(_ID_HEX // 2), secrets.token_urlsafe(32)
    now = int(time.time() * 1000)
    db.execute(
        "INSERT INTO api_keys (key_id, name, scopes, secret_sha256, created_at_ms) "
        "VALUES (?, ?, ?, ?, ?)",
        (key_id, name, ",".join(scopes), _digest(secret), now),
    )
    return NewKey(ApiKey(key_id, name, scopes, now), f"{_PREFIX}_{key_id}_{secret}")


def list_keys(db: Database) -> list[ApiKey]:
    """Every key, oldest first (revoked ones too)."""
    rows = db.rows(
        "SELECT key_id, name, scopes, created_at_ms, revoked_at_ms FROM api_keys "
        "ORDER BY created_at_ms, key_id"
    )
    return [
        ApiKey(str(k), str(n), parse_scopes(str(s)), int(c), None if r is None else int(r))
        for k, n, s, c, r in rows
    ]


def revoke_key(db: Database, key_id: str) -> bool:
    """Revoke ``key_id`` (kept, marked); ``False`` if no such key is active."""
    changed = db.execute(
        "UPDATE api_keys SET revoked_at_ms = ? WHERE key_id = ? AND revoked_at_ms IS NULL",
        (int(time.time() * 1000), key_id),
    )
    return changed > 0


_Row = tuple[str, tuple[Scope, ...], str] | None  # (name, scopes, digest) of an active key


class KeyChecker:
    """Checks tokens against the store's keys; rows are cached for ``cache_s`` seconds."""

    def __init__(
        self, db: Database, *, cache_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, _Row]] = {}

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """``(known, key)`` from the cache alone: ``known`` is ``False`` when the store must be
        asked (:meth:`check`). Never touches the store, so it may run on the event loop."""
        found = _TOKEN.match(token)
        if found is None:
            return True, None
        entry = self._cache.get(found.group(1))
        if entry is None or self._clock() - entry[0] > self.cache_s:
            return False, None
        return True, _verify(found.group(1), found.group(2), entry[1])

    def check(self, token: str) -> ApiKey | None:
        """The active key ``token`` proves, or ``None`` (unknown, wrong secret, revoked)."""
        found = _TOKEN.match(token)
        if found is None:
            return None
        key_id, secret = found.group(1), found.group(2)
        row = self._load(key_id)
        return _verify(key_id, secret, row)

    def _load(self, key_id: str) -> _Row:
        got = self.db.one(
            "SELECT name, scopes, secret_sha256 FROM api_keys "
            "WHERE key_id = ? AND revoked_at_ms IS NULL",
            (key_id,),
        )
        row: _Row = None if got is None else (str(got[0]), parse_scopes(str(got[1])), str(got[2]))
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key_id] = (self._clock(), row)
        return row


def _verify(key_id: str, secret: str, row: _Row) -> ApiKey | None:
    """Constant-time comparison of the secret's digest (a dummy one for an unknown id)."""
    ok = hmac.compare_digest(_digest(secret), _DUMMY if row is None else row[2])
    if row is None or not ok:
        return None
    return ApiKey(key_id, row[0], row[1], 0)
