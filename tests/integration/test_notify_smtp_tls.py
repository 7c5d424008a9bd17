"""The e-mail channel with STARTTLS and login against a real aiosmtpd server."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from fraudstream.sinks import EmailChannel, NotifyError
from tests.unit.test_notify import Inbox, free_port, make_alert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the STARTTLS test needs the openssl command"
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


@pytest.fixture
def tls_smtp(cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    crt, key = cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    inbox = Inbox()

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=isinstance(data, LoginPassword) and data.password == b"pw")

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=auth,
    )
    controller.start()
    yield inbox, port
    controller.stop()


def test_starttls_login_and_delivery(tls_smtp: tuple[Inbox, int], cert: tuple[Path, Path]) -> None:
    inbox, port = tls_smtp
    channel = EmailChannel(
        "127.0.0.1",
        port,
        sender="fs@bank.test",
        recipients=["a@bank.test"],
        starttls=True,
        username="fs",
        password=SecretStr("pw"),
        ca_file=str(cert[0]),
        timeout_s=5,
    )
    channel.send(make_alert())
    assert len(inbox.messages) == 1


def test_plain_smtp_to_a_starttls_server_fails(tls_smtp: tuple[Inbox, int]) -> None:
    _, port = tls_smtp
    channel = EmailChannel(
        "127.0.0.1", port, sender="fs@bank.test", recipients=["a@bank.test"], timeout_s=5
    )
    with pytest.raises(NotifyError, match="SMTP server"):
        channel.send(make_alert())
