"""Who may do what on the dashboard: accounts, roles, password hashes and the audit log.

Pure functions of a :class:`Database` (no Streamlit). Passwords are kept only as scrypt hashes
with a random salt per account and compared in constant time. A role grants everything the
roles before it in :data:`ROLES` grant: a *viewer* reads the pages, an *analyst* also gives
verdicts, publishes labels and changes the rules and lists, an *admin* also reads the audit
log (:data:`PERMISSIONS`). :func:`require` re-reads the account from the store, so an object
that merely claims a role grants nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal

from fraudstream.dashboard._db import Database
from fraudstream.dashboard._text import MAX_NAME_CHARS, safe_text
from fraudstream.errors import ConfigError, FraudstreamError

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "AccessDenied",
    "Account",
    "AuditEntry",
    "Permission",
    "Role",
    "User",
    "add_user",
    "audit",
    "audit_statement",
    "authenticate",
    "can",
    "get_user",
    "hash_password",
    "list_users",
    "may",
    "recent_audit",
    "remove_user",
    "require",
    "users_exist",
    "verify_password",
]

log = logging.getLogger(__name__)

Role = Literal["viewer", "analyst", "admin"]
#: The roles, each granting everything the ones before it grant.
ROLES: Final[tuple[Role, ...]] = ("viewer", "analyst", "admin")
Permission = Literal["give verdicts", "change rules", "read the audit log"]
#: The least role each permission needs.
PERMISSIONS: Final[dict[Permission, Role]] = {
    "give verdicts": "analyst",
    "change rules": "analyst",
    "read the audit log": "admin",
}

#: scrypt's cost: 16 MiB and ~50 ms per hash on this machine (OWASP's minimum is N=2^17/r=8/p=1
#: *or* an equivalent; 2^14 keeps a sign-in fast on a shared 2-core box).
_N: Final = 2**14
_R: Final = 8
_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_MAX_N: Final = 2**20  # a stored hash asking for more is refused, not computed
_MIN_PASSWORD_CHARS: Final = 8
_MAX_AUDIT_CHARS: Final = 500


class AccessDenied(FraudstreamError):
    """The user's role does not allow the action (or nobody is signed in)."""


@dataclass(frozen=True, slots=True)
class User:
    """Who is acting: a signed-in account, or a proxy header's user (role from the store)."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Account:
    """A row of ``dashboard_users`` (without its hash)."""

    name: str
    role: Role
    has_password: bool
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    actor: str
    action: str
    target: str
    detail: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES, maxmem=256 * n * r
    )


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) with a fresh random salt: never the password itself."""
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_scrypt(password, salt, _N, _R, _P))}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time comparison).

    ``None`` or a malformed hash matches nothing (a dummy hash is still computed, so the time
    taken does not tell whether the account exists).
    """
    try:
        kind, n_text, r_text, p_text, salt_text, hash_text = (stored or "").split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = base64.b64decode(salt_text), base64.b64decode(hash_text)
        if kind != "scrypt" or not (2 <= n <= _MAX_N and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError(kind)
    except ValueError:
        _scrypt(password, b"\0" * _SALT_BYTES, _N, _R, _P)
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def can(user: User | None, role: Role) -> bool:
    """Whether ``user`` has ``role`` or a higher one (nobody has none)."""
    return user is not None and ROLES.index(user.role) >= ROLES.index(role)


def may(user: User | None, permission: Permission) -> bool:
    """Whether ``user`` has the role :data:`PERMISSIONS` asks for ``permission``."""
    return can(user, PERMISSIONS[permission])


def _role(value: object) -> Role:
    text = str(value)
    if text not in ROLES:
        raise ConfigError(f"role {text!r} is not one of {', '.join(ROLES)}")
    return text


def _check_name(name: str) -> str:
    if not name or name != name.strip() or safe_text(name) != name or len(name) > MAX_NAME_CHARS:
        raise ConfigError(
            f"user name {safe_text(name)!r} is not allowed: 1 to {MAX_NAME_CHARS} characters, "
            "no control characters, no leading or trailing spaces"
        )
    return name


def users_exist(db: Database) -> bool:
    """Whether any account exists (without one the dashboard is read-only)."""
    return db.one("SELECT 1 FROM dashboard_users LIMIT 1") is not None


def get_user(db: Database, name: str) -> Account | None:
    row = db.one(
        "SELECT name, role, password_hash, created_at_ms FROM dashboard_users WHERE name = ?",
        (name,),
    )
    if row is None:
        return None
    return Account(str(row[0]), _role(row[1]), row[2] is not None, int(row[3]))


def list_users(db: Database) -> list[Account]:
    rows = db.rows(
        "SELECT name, role, password_hash, created_at_ms FROM dashboard_users ORDER BY name"
    )
    return [Account(str(r[0]), _role(r[1]), r[2] is not None, int(r[3])) for r in rows]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


_AUDIT_INSERT: Final = (
    "INSERT INTO dashboard_audit (at_ms, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)"
)


def audit_statement(
    actor: str, action: str, target: str = "", detail: str = "", at_ms: int | None = None
) -> tuple[str, tuple[object, ...]]:
    """The ``INSERT`` of one audit entry, to run in the caller's transaction."""
    at = _now_ms() if at_ms is None else at_ms
    values = [safe_text(v)[:_MAX_AUDIT_CHARS] for v in (actor, action, target, detail)]
    return _AUDIT_INSERT, (at, *values)


def audit(
    db: Database,
    actor: str,
    action: str,
    target: str = "",
    detail: str = "",
    at_ms: int | None = None,
) -> None:
    """Append one entry to the audit log (values kept as inert text, at most 500 characters)."""
    db.execute(*audit_statement(actor, action, target, detail, at_ms))


def recent_audit(db: Database, limit: int = 200, actor: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` audit entries, newest first (of one actor if given)."""
    where, params = ("WHERE actor = ?", [actor]) if actor else ("", [])
    rows = db.rows(
        f"SELECT at_ms, actor, action, target, detail FROM dashboard_audit {where} "  # noqa: S608
        "ORDER BY at_ms DESC LIMIT ?",
        (*params, int(limit)),
    )
    return [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def add_user(db: Database, name: str, role: str, password: str | None, *, actor: str) -> Account:
    """Create an account (``password`` ``None``: it signs in only through the proxy header)."""
    _check_name(name)
    checked = _role(role)
    if password is not None and len(password) < _MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password must have at least {_MIN_PASSWORD_CHARS} characters")
    if get_user(db, name) is not None:
        raise ConfigError(f"user {name!r} exists already; remove it first to change it")
    at = _now_ms()
    hashed = None if password is None else hash_password(password)
    db.execute_all(
        [
            (
                "INSERT INTO dashboard_users (name, role, password_hash, created_at_ms) "
                "VALUES (?, ?, ?, ?)",
                (name, checked, hashed, at),
            ),
            audit_statement(actor, "user added", name, f"role {checked}", at),
        ]
    )
    log.info("dashboard user %r added (role %s) by %s", name, checked, actor)
    return Account(name, checked, password is not None, at)


def remove_user(db: Database, name: str, *, actor: str) -> None:
    """Delete an account; ``ConfigError`` if there is none of that name."""
    if get_user(db, name) is None:
        raise ConfigError(f"no dashboard user {name!r}; `fraudstream users list` shows them")
    db.execute_all(
        [
            ("DELETE FROM dashboard_users WHERE name = ?", (name,)),
            audit_statement(actor, "user removed", name),
        ]
    )
    log.info("dashboard user %r removed by %s", name, actor)


def authenticate(db: Database, name: str, password: str, *, via: str = "form") -> User | None:
    """The account's :class:`User` if ``password`` is its password, else ``None``.

    Both outcomes go to the audit log and the log (the password never does).
    """
    typed = safe_text(name).strip()[:MAX_NAME_CHARS]
    row = db.one("SELECT role, password_hash FROM dashboard_users WHERE name = ?", (typed,))
    if verify_password(password, None if row is None else row[1]):
        assert row is not None
        user = User(typed, _role(row[0]))
        audit(db, typed, "sign-in", detail=f"{via}, role {user.role}")
        log.info("dashboard sign-in: %r (%s)", typed, user.role)
        return user
    reason = "unknown user" if row is None else "wrong password or no password set"
    audit(db, typed, "sign-in failed", detail=f"{via}: {reason}")
    log.warning("dashboard sign-in failed for %r: %s", typed, reason)
    return None


def require(db: Database, user: User | None, role: Role, action: str) -> User:
    """``user`` as the store knows it now, if that grants ``role``; else ``AccessDenied``.

    The role is read from ``dashboard_users`` (an account removed or demoted since it signed in
    loses its rights at once; a name not in the table is a viewer). A refusal is audited.
    """
    stored = None if user is None else get_user(db, user.name)
    current = None if user is None else User(user.name, stored.role if stored else "viewer")
    if can(current, role):
        assert current is not None
        return current
    who = "nobody signed in" if current is None else f"{current.name} ({current.role})"
    audit(db, current.name if current else "", "refused", action, f"needs {role}; {who}")
    log.warning("dashboard: %s refused (needs the %s role; %s)", action, role, who)
    raise AccessDenied(f"{action} needs the {role} role; {who}")
