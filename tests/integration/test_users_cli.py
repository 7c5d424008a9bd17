"""``fraudstream users`` as an operator runs it, against a SQLite store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

PASSWORD = "correct horse battery"


def _users(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraudstream", "users", *args, "--store-url", url],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_add_list_remove_with_hashes_and_audit(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    empty = _users(url, "list")
    assert empty.returncode == 0, empty.stderr
    assert "fraudstream users add admin --role admin" in empty.stdout

    added = _users(
        url, "add", "ana", "--role", "analyst", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert "user ana added as analyst (signs in with a password)" in added.stdout
    # the hidden prompt, asked twice (no terminal here: getpass reads stdin)
    prompted = _users(url, "add", "root", "--role", "admin", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.returncode == 0, prompted.stderr
    differ = _users(url, "add", "eve", "--role", "admin", stdin=f"{PASSWORD}\nsomething else\n")
    assert differ.returncode == 1 and "the two passwords differ" in differ.stderr
    proxy = _users(url, "add", "bob", "--role", "viewer", "--no-password")
    assert proxy.returncode == 0 and "proxy header only" in proxy.stdout

    listed = _users(url, "list")
    assert listed.stdout.splitlines() == [
        "ana   analyst  password",
        "bob   viewer   proxy header",
        "root  admin    password",
    ]
    for args, message in [
        (("add", "ana", "--role", "viewer", "--no-password"), "exists already"),
        (("add", "zed", "--role", "boss", "--no-password"), "role 'boss' is not one of"),
        (("add", "zed", "--role", "viewer", "--password-stdin"), "at least 8 characters"),
        (("remove", "nobody"), "no dashboard user 'nobody'"),
    ]:
        out = _users(url, *args, stdin="short\n")
        assert out.returncode == 1, args
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert _users(url, "remove", "bob").returncode == 0

    with sqlite3.connect(db) as conn:
        users = conn.execute("SELECT name, role, password_hash FROM dashboard_users ORDER BY name")
        rows = users.fetchall()
        audit = conn.execute("SELECT actor, action, target FROM dashboard_audit ORDER BY rowid")
        entries = audit.fetchall()
    assert [(n, r) for n, r, _ in rows] == [("ana", "analyst"), ("root", "admin")]
    assert all(h.startswith("scrypt$") and PASSWORD not in h for _, _, h in rows)
    assert rows[0][2] != rows[1][2]  # same password, different salts
    assert entries == [
        ("cli", "user added", "ana"),
        ("cli", "user added", "root"),
        ("cli", "user added", "bob"),
        ("cli", "user removed", "bob"),
    ]
    assert PASSWORD.encode() not in db.read_bytes()
