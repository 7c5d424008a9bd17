"""Dashboard access against a real SQLite store: password hashes, roles on the verdict path,
and the audit log."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.dashboard import Database
from fraudstream.dashboard import _queries as q
from fraudstream.dashboard._access import (
    AccessDenied,
    User,
    add_user,
    authenticate,
    can,
    get_user,
    hash_password,
    list_users,
    recent_audit,
    remove_user,
    users_exist,
    verify_password,
)
from fraudstream.dashboard._verdicts import publish_verdicts, store_verdict
from fraudstream.errors import ConfigError

from .test_dashboard_queries import T0, seeded

PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """``seed_known``'s alerts (t1 t2 t3 t6 t7 open) in a SQLite store."""
    yield from seeded(tmp_path)


def test_a_hash_verifies_its_password_only_and_never_contains_it() -> None:
    stored = hash_password(PASSWORD)
    assert PASSWORD not in stored and stored.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not verify_password("", stored)
    assert not verify_password(PASSWORD, None)  # an account without a password
    assert not verify_password(PASSWORD, "plaintext")
    assert not verify_password(PASSWORD, stored.replace("$16384$", "$1073741824$"))  # too costly


def test_each_hash_has_its_own_salt() -> None:
    one, two = hash_password(PASSWORD), hash_password(PASSWORD)
    assert one.split("$")[4] != two.split("$")[4]
    assert one != two
    assert verify_password(PASSWORD, one) and verify_password(PASSWORD, two)


def test_accounts_are_stored_with_hashes_only(db: Database, tmp_path: Path) -> None:
    assert not users_exist(db)
    add_user(db, "ana", "analyst", PASSWORD, actor="cli")
    add_user(db, "proxy-only", "viewer", None, actor="cli")
    assert users_exist(db)
    assert [(a.name, a.role, a.has_password) for a in list_users(db)] == [
        ("ana", "analyst", True),
        ("proxy-only", "viewer", False),
    ]
    raw = (tmp_path / "store.db").read_bytes()
    assert PASSWORD.encode() not in raw
    with pytest.raises(ConfigError, match="exists already"):
        add_user(db, "ana", "admin", PASSWORD, actor="cli")
    with pytest.raises(ConfigError, match="role 'boss'"):
        add_user(db, "bob", "boss", PASSWORD, actor="cli")
    with pytest.raises(ConfigError, match="at least 8"):
        add_user(db, "bob", "viewer", "short", actor="cli")
    for bad in ("", " ana", "a\u202eb", "x" * 101):
        with pytest.raises(ConfigError, match="not allowed"):
            add_user(db, bad, "viewer", PASSWORD, actor="cli")
    with pytest.raises(ConfigError, match="no dashboard user 'nobody'"):
        remove_user(db, "nobody", actor="cli")
    remove_user(db, "proxy-only", actor="cli")
    assert get_user(db, "proxy-only") is None
    assert [(e.actor, e.action, e.target) for e in recent_audit(db)][:3] == [
        ("cli", "user removed", "proxy-only"),
        ("cli", "user added", "proxy-only"),
        ("cli", "user added", "ana"),
    ]


def test_sign_in_and_failures_are_audited_and_logged_without_the_password(
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_user(db, "ana", "analyst", PASSWORD, actor="cli")
    add_user(db, "proxy-only", "admin", None, actor="cli")
    caplog.set_level(logging.INFO, logger="fraudstream.dashboard")
    assert authenticate(db, "ana", PASSWORD) == User("ana", "analyst")
    assert authenticate(db, "ana", "guess-one") is None
    assert authenticate(db, "mallory", "guess-two") is None
    assert authenticate(db, "proxy-only", "") is None  # no password: never by the form
    entries = [(e.actor, e.action, e.detail) for e in recent_audit(db, 4)]
    assert sorted(entries) == sorted(
        [
            ("ana", "sign-in", "form, role analyst"),
            ("ana", "sign-in failed", "form: wrong password or no password set"),
            ("mallory", "sign-in failed", "form: unknown user"),
            ("proxy-only", "sign-in failed", "form: wrong password or no password set"),
        ]
    )
    assert "sign-in failed for 'mallory'" in caplog.text
    assert "guess" not in caplog.text and PASSWORD not in caplog.text
    with sqlite3.connect(db.path) as conn:
        stored = " ".join(str(r) for r in conn.execute("SELECT * FROM dashboard_audit"))
    assert "guess" not in stored and PASSWORD not in stored


def test_roles_are_ordered() -> None:
    assert can(User("a", "admin"), "analyst") and can(User("a", "analyst"), "analyst")
    assert not can(User("v", "viewer"), "analyst") and not can(None, "viewer")
    assert not can(User("a", "analyst"), "admin")


def _status(db: Database, alert_id: str) -> tuple[str, str | None]:
    alert = q.get_alert(db, alert_id)
    assert alert is not None
    return alert.status, alert.analyst


def test_only_analysts_and_admins_in_the_store_can_store_a_verdict(db: Database) -> None:
    add_user(db, "vic", "viewer", PASSWORD, actor="cli")
    add_user(db, "ana", "analyst", PASSWORD, actor="cli")
    add_user(db, "root", "admin", None, actor="cli")
    refused = [
        None,  # nobody signed in
        User("vic", "viewer"),
        User("vic", "analyst"),  # claims a role the store does not give it
        User("eve", "admin"),  # not in the store at all: a viewer
    ]
    for user in refused:
        with pytest.raises(AccessDenied, match="needs the analyst role"):
            store_verdict(db, user, "t1", "confirmed_fraud", T0)
        assert _status(db, "t1") == ("open", None)
    store_verdict(db, User("ana", "analyst"), "t1", "confirmed_fraud", T0 + 1)
    assert _status(db, "t1") == ("confirmed_fraud", "ana")
    store_verdict(db, User("root", "admin"), "t2", "false_positive", T0 + 2)
    assert _status(db, "t2") == ("false_positive", "root")
    remove_user(db, "ana", actor="cli")  # a removed account loses its rights at once
    with pytest.raises(AccessDenied):
        store_verdict(db, User("ana", "analyst"), "t3", "confirmed_fraud", T0 + 3)
    assert _status(db, "t3") == ("open", None)
    actions = [(e.actor, e.action, e.target) for e in recent_audit(db, 100)]
    assert ("ana", "verdict stored", "t1") in actions
    assert ("root", "verdict stored", "t2") in actions
    refusals = [a for a in actions if a[1] == "refused"]
    assert len(refusals) == 5 and all(a[2].startswith("verdict on alert") for a in refusals)


def test_a_viewer_cannot_publish_labels(db: Database) -> None:
    add_user(db, "vic", "viewer", PASSWORD, actor="cli")
    # the refusal comes before any broker is contacted: this address is never reached
    client = {"bootstrap.servers": "127.0.0.1:1"}
    with pytest.raises(AccessDenied, match="publish 1 label"):
        publish_verdicts(db, User("vic", "viewer"), client, "fraud-labels", ["t1"])
    with pytest.raises(AccessDenied):
        publish_verdicts(db, None, client, "fraud-labels", ["t1"])
    assert [e.action for e in recent_audit(db, 2)] == ["refused", "refused"]
