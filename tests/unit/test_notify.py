"""Notifier channels against a real local HTTP server and a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import SecretStr

from fraudstream.errors import StoreError
from fraudstream.sinks import (
    Alert,
    Dispatcher,
    EmailChannel,
    NotifyError,
    RateLimiter,
    Reason,
    SQLiteStore,
    WebhookChannel,
    run_notifier,
)
from fraudstream.sinks._notify import SIGNATURE_HEADER, sign


def make_alert(alert_id: str = "tx/0/1@5", decision: str = "block") -> Alert:
    return Alert(
        alert_id=alert_id,
        tx_id=alert_id,
        decision=decision,
        score=0.97,
        reasons=[Reason("amount_sum_by_account_1h", 9000.0, 0.5)],
        model_version="lr-1",
        event_time_ms=1_700_000_000_000,
        created_at_ms=1_700_000_000_100,
        account="C1'; DROP TABLE x;--",
        counterparty="M-ü-😀",
        kind="TRANSFER",
        amount=1e12,
        label=None,
    )


class Hook:
    """A real local webhook endpoint answering ``statuses`` in turn (then 200).

    ``stop()`` closes the listening socket (the endpoint is down), ``start()`` listens again on
    the same port. ``delivered`` holds the alert ids answered with a 2xx, in order;
    ``on_request(body)`` (optional) is called first and drops the request when it returns true.
    """

    def __init__(self, statuses: list[int] | None = None, port: int = 0) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.delivered: list[str] = []
        self.on_request: Callable[[bytes], bool] | None = None
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.on_request is not None and hook.on_request(body):
                    return  # dropped without an answer
                hook.requests.append((dict(self.headers), body))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status < 300:  # noted before answering: the client may return at once
                    hook.delivered.append(json.loads(body)["alert_id"])
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler
        self.port = port
        self.start()

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def close(self) -> None:
        self.stop()


class RawServer:
    """A real local TCP server that answers every connection with ``answer(conn)`` (its own
    thread per connection): a trickle, garbage, silence. ``connections`` counts the accepted
    ones, ``lines_sent`` what ``trickle`` sent."""

    def __init__(self, answer: Callable[[RawServer, socket.socket], None]) -> None:
        self.answer = answer
        self.connections = 0
        self.lines_sent = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                conn.recv(65536)  # the request (small: one read is enough here)
                self.answer(self, conn)
            except OSError:
                pass  # the client hung up: what the deadline does

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def trickle(every_s: float, *, head: bytes = b"HTTP/1.1 200 OK\r\n") -> Callable[..., None]:
    """Answer ``head`` and then one more header line every ``every_s`` seconds, forever."""

    def answer(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(head)
        while not server.closed.wait(every_s):
            conn.sendall(b"X-Trickle-%d: 1\r\n" % server.lines_sent)
            server.lines_sent += 1

    return answer


def garbage(data: bytes) -> Callable[..., None]:
    """Answer ``data`` (not HTTP) and hang up."""

    def answer(_server: RawServer, conn: socket.socket) -> None:
        conn.sendall(data)

    return answer


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"pw"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=auth, auth_require_tls=False
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def failures(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "s.db")
    store.open()
    yield store
    store.close()


def test_webhook_posts_signed_json(hook: Hook) -> None:
    alert = make_alert()
    WebhookChannel(hook.url, secret=SecretStr("k3y")).send(alert)
    ((headers, body),) = hook.requests
    assert json.loads(body)["alert_id"] == alert.alert_id
    assert json.loads(body)["counterparty"] == "M-ü-😀"
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected == sign("k3y", body)
    assert headers["Content-Type"] == "application/json"


def test_webhook_errors_say_whether_to_retry(hook: Hook) -> None:
    hook.statuses = [503, 401]
    channel = WebhookChannel(hook.url, timeout_s=2)
    with pytest.raises(NotifyError, match="HTTP 503") as transient:
        channel.send(make_alert())
    assert not transient.value.permanent
    with pytest.raises(NotifyError, match="HTTP 401") as permanent:
        channel.send(make_alert())
    assert permanent.value.permanent


def test_webhook_down_is_transient() -> None:
    with pytest.raises(NotifyError, match="unreachable") as info:
        WebhookChannel(f"http://127.0.0.1:{free_port()}/x", timeout_s=1).send(make_alert())
    assert not info.value.permanent


def test_webhook_rejects_other_schemes() -> None:
    with pytest.raises(NotifyError, match="http"):
        WebhookChannel("file:///etc/passwd")


def test_email_reaches_a_real_smtp_server_with_login(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    channel = EmailChannel(
        "127.0.0.1",
        port,
        sender="fs@bank.test",
        recipients=["analyst@bank.test"],
        username="fs",
        password=SecretStr("pw"),
    )
    channel.send(make_alert())
    (envelope,) = inbox.messages
    assert envelope.rcpt_tos == ["analyst@bank.test"]
    text = (
        envelope.content.decode() if isinstance(envelope.content, bytes) else str(envelope.content)
    )
    assert "BLOCK" in text and "tx/0/1@5" in text


def test_email_server_down_is_transient_and_hides_the_password() -> None:
    channel = EmailChannel(
        "127.0.0.1",
        free_port(),
        sender="a@b.c",
        recipients=["x@b.c"],
        username="fs",
        password=SecretStr("wrong-secret"),
        timeout_s=2,
    )
    with pytest.raises(NotifyError, match="SMTP server 127.0.0.1") as info:
        channel.send(make_alert())
    assert not info.value.permanent
    assert "wrong-secret" not in str(info.value)


def test_dispatcher_retries_then_succeeds_and_dedupes(hook: Hook, failures: SQLiteStore) -> None:
    hook.statuses = [500, 502]
    sleeps: list[float] = []
    d = Dispatcher([WebhookChannel(hook.url)], failures, backoff_initial_s=0.1, sleep=sleeps.append)
    assert d.handle(make_alert())
    assert not d.handle(make_alert())  # same alert id: never twice
    assert not d.handle(make_alert("other", decision="review"))  # default: block only
    assert len(hook.requests) == 3 and d.sent == 1
    assert sleeps == [0.1, 0.2]
    assert failures.count_notification_failures() == 0


def test_permanent_failure_is_recorded_never_dropped(hook: Hook, failures: SQLiteStore) -> None:
    hook.statuses = [500] * 10
    d = Dispatcher(
        [WebhookChannel(hook.url)],
        failures,
        max_attempts=3,
        sleep=lambda _s: None,
        decisions=("review", "block"),
    )
    d.handle(make_alert("a1"))
    d.handle(make_alert("a2", decision="review"))
    assert d.failed == 2 and len(hook.requests) == 6
    assert failures.count_notification_failures() == 2
    conn = failures._connection()
    rows = conn.execute(
        "SELECT alert_id, channel, attempts, error, payload FROM notification_failures "
        "ORDER BY alert_id"
    ).fetchall()
    assert [r[:3] for r in rows] == [("a1", "webhook", 3), ("a2", "webhook", 3)]
    assert "HTTP 500" in rows[0][3] and json.loads(rows[0][4])["alert_id"] == "a1"


def test_without_max_attempts_a_failing_endpoint_is_retried_until_it_works(
    hook: Hook, failures: SQLiteStore
) -> None:
    hook.statuses = [503] * 8
    sleeps: list[float] = []
    d = Dispatcher(
        [WebhookChannel(hook.url)],
        failures,
        max_attempts=None,
        backoff_max_s=2.0,
        sleep=sleeps.append,
    )
    assert d.handle(make_alert())
    assert len(hook.requests) == 9 and d.sent == 1 and d.failed == 0
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert failures.count_notification_failures() == 0


def test_stop_while_endpoint_down_raises_and_records_nothing(failures: SQLiteStore) -> None:
    url = f"http://127.0.0.1:{free_port()}/down"
    calls: list[float] = []
    d = Dispatcher(
        [WebhookChannel(url, timeout_s=1)],
        failures,
        max_attempts=None,
        sleep=calls.append,
        should_stop=lambda: len(calls) >= 6,
    )
    with pytest.raises(NotifyError, match="stopped while retrying"):
        d.handle(make_alert())
    assert calls == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert failures.count_notification_failures() == 0 and d.failed == 0
    assert not d.handle(make_alert("x", decision="review"))


def test_by_default_a_down_endpoint_is_retried_not_given_up(
    hook: Hook, failures: SQLiteStore
) -> None:
    hook.statuses = [503, 429, 500]
    d = Dispatcher([WebhookChannel(hook.url)], failures, sleep=lambda _s: None)
    assert d.max_attempts is None
    assert d.handle(make_alert())
    assert hook.delivered == [make_alert().alert_id] and len(hook.requests) == 4
    assert failures.count_notification_failures() == 0


def test_deliveries_are_recorded_and_a_restarted_dispatcher_skips_them(
    hook: Hook, tmp_path: Path
) -> None:
    path = tmp_path / "s.db"
    first = SQLiteStore(path)
    first.open()
    assert Dispatcher([WebhookChannel(hook.url)], first).handle(make_alert("a1"))
    first.close()
    again = SQLiteStore(path)  # a new process: nothing in memory
    again.open()
    d = Dispatcher([WebhookChannel(hook.url)], again)
    assert not d.handle(make_alert("a1"))
    assert d.handle(make_alert("a2"))
    assert hook.delivered == ["a1", "a2"] and d.skipped == 1
    assert again.notified_channels("a1") == {"webhook"}
    again.close()


def test_only_the_channels_not_yet_done_are_sent_after_a_restart(
    hook: Hook, smtp: tuple[Inbox, int], failures: SQLiteStore
) -> None:
    inbox, port = smtp
    email = EmailChannel("127.0.0.1", port, sender="a@b.c", recipients=["x@b.c"])
    failures.record_notification_sent("a1", "webhook")  # delivered before the restart
    failures.record_notification_failure("a2", "email", 1, "refused", "{}")  # failed for good
    d = Dispatcher([WebhookChannel(hook.url), email], failures)
    assert d.handle(make_alert("a1")) and d.handle(make_alert("a2"))
    assert hook.delivered == ["a2"]
    assert [m.original_content.count(b"a1") > 0 for m in inbox.messages] == [True]
    assert failures.notified_channels("a1") == failures.notified_channels("a2")


def test_a_failing_store_holds_until_the_delivery_is_recorded(hook: Hook, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.open()
    store.close()  # the store is unavailable: every call raises StoreError
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            store.open()  # back

    d = Dispatcher([WebhookChannel(hook.url)], store, backoff_initial_s=0.1)
    assert d.handle(make_alert("a1"), wait=wait)
    assert waits == [0.1, 0.2, 0.4] and hook.delivered == ["a1"]
    assert store.notified_channels("a1") == {"webhook"}
    store.close()


def test_stop_while_the_store_fails_raises_the_store_error(hook: Hook, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")  # never opened
    d = Dispatcher([WebhookChannel(hook.url)], store, should_stop=lambda: True)
    with pytest.raises(StoreError, match="not open"):
        d.handle(make_alert("a1"))
    assert hook.requests == []


def test_rate_limiter_spaces_sends() -> None:
    now = [0.0]
    waited: list[float] = []

    def sleep(s: float) -> None:
        waited.append(s)
        now[0] += s

    limiter = RateLimiter(2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert sum(waited) == pytest.approx(1.0)


class FakeMsg:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "fraud-alerts"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMsg]]) -> None:
        self.batches, self.commits = batches, 0

    def subscribe(self, topics: list[str]) -> None:
        pass

    def consume(self, n: int, timeout: float) -> list[FakeMsg]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert [(tp.partition, tp.offset) for tp in offsets] == [(0, 4)]
        self.commits += 1


def test_run_notifier_records_undecodable_alerts(hook: Hook, failures: SQLiteStore) -> None:
    import msgspec

    good = msgspec.json.encode(make_alert())
    consumer = FakeConsumer([[FakeMsg(good, 1), FakeMsg(b"{bad", 2), FakeMsg(good, 3)]])
    d = Dispatcher([WebhookChannel(hook.url)], failures)
    handled = run_notifier(consumer, "fraud-alerts", d, lambda: False, idle_exit_s=0.3)
    assert handled == 1 and len(hook.requests) == 1 and consumer.commits == 1
    assert failures.count_notification_failures() == 1


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\n",  # then one header line every 2 s, never the blank line
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",  # then body bytes every 2 s
    ],
    ids=["headers", "body"],
)
def test_a_trickling_webhook_is_cut_off_at_the_total_deadline(head: bytes) -> None:
    server = RawServer(trickle(2.0, head=head))  # each line well within the 3 s per read
    channel = WebhookChannel(server.url, timeout_s=3)
    started = time.monotonic()
    try:
        with pytest.raises(NotifyError, match=r"did not answer alert .* within 3 s") as info:
            channel.send(make_alert())
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert 2.9 <= elapsed <= 4.0, elapsed  # the deadline, not a per-read timeout
    assert server.lines_sent >= 1 and not info.value.permanent


@pytest.mark.parametrize(
    "answer",
    [
        b"\x00\xffgarbage, not HTTP\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a bad chunk
        b"X" * 70_000,  # a status line longer than http.client accepts
        b"",  # hung up without a word
    ],
    ids=["binary", "ssh", "bad-status", "bad-chunk", "huge-line", "empty"],
)
def test_a_non_http_answer_is_a_transient_failure(answer: bytes) -> None:
    server = RawServer(garbage(answer))
    try:
        with pytest.raises(NotifyError, match=r"not HTTP|unreachable") as info:
            WebhookChannel(server.url, timeout_s=3).send(make_alert())
    finally:
        server.close()
    message = str(info.value)
    assert not info.value.permanent and message.endswith("will retry"), message
    assert len(message) < 400 and "\x00" not in message  # one short, printable line


def test_a_garbage_answer_is_retried_then_recorded_as_failed(
    failures: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    server = RawServer(garbage(b"\x00\xffgarbage\r\n\r\n"))
    d = Dispatcher(
        [WebhookChannel(server.url, timeout_s=3)], failures, max_attempts=3, sleep=lambda _s: None
    )
    try:
        assert d.handle(make_alert("g1"))
    finally:
        server.close()
    assert server.connections == 3 and d.failed == 1 and d.sent == 0
    (row,) = failures._connection().execute(
        "SELECT alert_id, attempts, error FROM notification_failures"
    )
    assert row[:2] == ("g1", 3) and "not HTTP (BadStatusLine" in row[2]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3 and all("something that is not HTTP" in w for w in warnings)


def test_a_stop_cuts_a_delivery_short() -> None:
    server = RawServer(trickle(0.5))
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    channel = WebhookChannel(server.url, timeout_s=60, cancelled=stop.is_set)
    started = time.monotonic()
    try:
        with pytest.raises(NotifyError, match="cut short by a stop"):
            channel.send(make_alert())
    finally:
        server.close()
    assert time.monotonic() - started < 1.5


def test_a_redirect_is_a_permanent_failure(hook: Hook) -> None:
    hook.statuses = [302]
    with pytest.raises(NotifyError, match="HTTP 302 \\(a redirect\\)") as info:
        WebhookChannel(hook.url, timeout_s=2).send(make_alert())
    assert info.value.permanent and len(hook.requests) == 1


def test_a_stop_during_the_back_off_ends_it(failures: SQLiteStore) -> None:
    server = RawServer(garbage(b"nope\r\n"))
    stop = threading.Event()
    waits: list[float] = []

    def wait(seconds: float) -> None:  # a stop arrives during the first back-off
        waits.append(seconds)
        stop.set()

    d = Dispatcher([WebhookChannel(server.url)], failures, max_attempts=5, should_stop=stop.is_set)
    try:
        with pytest.raises(NotifyError, match="stopped while retrying"):
            d.handle(make_alert(), wait=wait)
    finally:
        server.close()
    assert waits == [0.5] and server.connections == 1  # no attempt after the stop
    assert failures.count_notification_failures() == 0 and d.failed == 0
