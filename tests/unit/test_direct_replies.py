"""Direct answers to the decision API: the detector's side (``stream._replies``) against real
TCP listeners on loopback, and the API's side (``api._channel``) reading them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest

from fraudstream.api._channel import DecisionChannel, Pending
from fraudstream.stream._replies import DirectReplies, _endpoint


class Listener:
    """A loopback TCP server collecting the lines of every connection (its own thread)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.lines: list[bytes] = []
        self.connections = 0
        self.close_after_first = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while chunk := conn.recv(65536):
                    buf += chunk
                    *done, buf = buf.split(b"\n")
                    self.lines += done
                    if done and self.close_after_first:
                        break

    def wait_for(self, n: int) -> list[bytes]:
        deadline = time.monotonic() + 5
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("[::1]:9", ("::1", 9))],
)
def test_endpoints_are_ip_and_port(address: str, expected: tuple[str, int]) -> None:
    assert _endpoint(address) == expected


@pytest.mark.parametrize(
    "address", ["localhost:8000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "evil.example:80"]
)
def test_names_and_bad_ports_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        _endpoint(address)


def test_lines_arrive_on_one_kept_connection(listener: Listener) -> None:
    direct = DirectReplies()
    assert direct.send(listener.address, [b'{"a":1}', b'{"a":2}'])
    assert direct.send(listener.address, [b'{"a":3}'])
    assert listener.wait_for(3) == [b'{"a":1}', b'{"a":2}', b'{"a":3}']
    assert listener.connections == 1
    assert direct.sent == 3
    direct.close()


def test_an_address_outside_the_networks_is_never_connected(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    direct = DirectReplies(networks=["10.0.0.0/8"])
    assert not direct.send(listener.address, [b"x"])
    assert not direct.send(listener.address, [b"y"])
    time.sleep(0.1)
    assert listener.connections == 0
    assert sum("REPLY_NETWORKS" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_an_unreachable_instance_fails_fast_and_is_not_retried_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        address = f"127.0.0.1:{s.getsockname()[1]}"
    direct = DirectReplies()  # nothing listens there any more
    assert not direct.send(address, [b"x"])
    started = time.monotonic()
    assert not direct.send(address, [b"y"])  # within the retry pause: no connection tried
    assert time.monotonic() - started < 0.05


def test_a_connection_the_instance_closed_is_replaced(listener: Listener) -> None:
    listener.close_after_first = True
    direct = DirectReplies()
    assert direct.send(listener.address, [b"first"])
    listener.wait_for(1)
    time.sleep(0.1)  # the listener has closed that connection by now
    assert direct.send(listener.address, [b"second"])
    assert listener.wait_for(2) == [b"first", b"second"]
    assert listener.connections == 2
    direct.close()


_ANSWER = {
    "tx_id": "t1",
    "account": "C1",
    "counterparty": "M1",
    "amount": 10.0,
    "decision": "review",
    "score": 0.7,
    "reasons": [],
    "model_version": "v1",
}


def test_the_api_listener_resolves_pending_requests_from_direct_lines() -> None:
    """The channel's listener (no broker needed for this part) takes lines split anywhere."""

    async def scenario() -> tuple[str, list[str], int]:
        loop = asyncio.get_running_loop()
        paths: list[str] = []
        channel = DecisionChannel(
            {"bootstrap.servers": "127.0.0.1:1"},
            transactions="tx",
            decisions="decisions",
            instance="i1",
            on_answer=lambda _s, path: paths.append(path),
        )
        channel._listen(loop)
        address = dict(channel._headers)["fraudstream.reply-to"]
        assert isinstance(address, bytes)
        host, port = _endpoint(address.decode())
        pending = Pending(loop.create_future(), ("C1", "M1", 10.0))
        channel.pending["t1"] = pending
        line = msgspec.json.encode(_ANSWER) + b"\n"
        _, writer = await asyncio.open_connection(host, port)
        writer.write(line[:7])  # a line split across two segments
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(line[7:] + msgspec.json.encode({**_ANSWER, "tx_id": "other"}) + b"\n")
        await writer.drain()
        answer = await asyncio.wait_for(pending.future, 5)
        writer.close()
        channel.close()
        return answer.decision, paths, channel.answered_directly

    decision, paths, direct = asyncio.run(scenario())
    assert (decision, paths, direct) == ("review", ["direct"], 1)
