"""A total deadline for one HTTP exchange through urllib (connect, TLS, headers and body).

A per-read socket timeout does not stop a server that sends a byte every few seconds; here a
watchdog thread shuts the exchange's sockets down when the deadline passes (or a stop is asked),
which ends any blocked read at once. ``deadline_opener`` is a urllib opener whose connections
are under a ``Deadline`` and which follows no redirect.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "deadline_opener"]


class Deadline:
    """The total deadline of one delivery: a watchdog thread shuts the delivery's sockets down
    when ``timeout_s`` has passed (connect, TLS, headers and body together) or ``cancelled()``
    turns true, so a read blocked on a server that trickles a byte at a time ends at once.

    It holds duplicates of the sockets (``watch``): shutting a duplicate down ends the
    connection, and a duplicate is never closed under it by the HTTP client. ``fired`` says why
    it fired (``"deadline"`` or ``"stop"``), else ``None``.
    """

    def __init__(self, timeout_s: float, cancelled: Callable[[], bool]) -> None:
        self.timeout_s, self.cancelled = timeout_s, cancelled
        self.fired: str | None = None
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-deadline", daemon=True)

    def __enter__(self) -> Deadline:
        self._end = time.monotonic() + self.timeout_s
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._done.set()
            for sock in self._socks:
                sock.close()
            self._socks.clear()
        self._thread.join()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Put ``sock`` under the deadline (shut down at once if it has passed); ``sock``."""
        with self._lock:
            dup = sock.dup()
            self._socks.append(dup)
            if self.fired is not None:
                _shutdown(dup)
        return sock

    def _run(self) -> None:
        while not self._done.wait(min(0.1, max(0.0, self._end - time.monotonic()))):
            if time.monotonic() >= self._end:
                reason = "deadline"
            elif self.cancelled():
                reason = "stop"
            else:
                continue
            with self._lock:
                if not self._done.is_set():
                    self.fired = reason
                    for sock in self._socks:
                        _shutdown(sock)
            return


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch_sockets(conn: http.client.HTTPConnection, deadline: Deadline) -> None:
    """Put the sockets ``conn`` opens under ``deadline`` (http.client opens them with its
    ``_create_connection``: the TCP socket, before any TLS handshake)."""
    attrs = vars(conn)
    create = attrs.get("_create_connection", socket.create_connection)
    attrs["_create_connection"] = lambda *a, **k: deadline.watch(create(*a, **k))


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        _watch_sockets(self, deadline)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        _watch_sockets(self, deadline)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req, deadline=self.deadline)  # type: ignore[arg-type]


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _HTTPSConnection,  # type: ignore[arg-type]
            req,
            context=self._context,  # type: ignore[attr-defined]
            deadline=self.deadline,
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (urllib would repeat a POST as a GET without its body)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def deadline_opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """A urllib opener whose HTTP(S) connections are under ``deadline``; redirects are answers."""
    return urllib.request.build_opener(
        _HTTPHandler(deadline), _HTTPSHandler(deadline), _NoRedirect()
    )
