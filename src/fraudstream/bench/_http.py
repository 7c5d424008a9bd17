"""A lean HTTP/1.1 load client for ``bench --api``: keep-alive connections, pre-built requests.

The load generator shares the 2 cores with the API, the detector and the broker it measures:
with aiohttp the bench's own process took 0.38-0.41 ms of CPU per request at 1,000 requests/s
(``bench --api``), 40 % of a core taken from the system under test; with this client, which
writes each request as one byte string and reads the answer by its ``Content-Length``,
0.16-0.18 ms (the open loop's scheduling and the checks of the answers included). It speaks
only what ``fraudstream serve`` answers (no chunked bodies, no redirects).
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["LeanHttp"]

_CONTENT_LENGTH: Final = b"content-length:"


class LeanHttp:
    """``connections`` keep-alive connections to ``host:port``; each request takes an idle one
    (waiting while all are busy) and gives it back."""

    def __init__(self, host: str, port: int, *, headers: dict[str, str], connections: int) -> None:
        self.host = host
        self.port = port
        self.connections = connections
        fixed = {"Host": f"{host}:{port}", "Content-Type": "application/json", **headers}
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    async def __aenter__(self) -> LeanHttp:
        self._idle = asyncio.Queue()
        for _ in range(self.connections):
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._idle is not None
        while not self._idle.empty():
            _reader, writer = self._idle.get_nowait()
            writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """``(status, body)`` of ``POST path`` with the JSON ``body``."""
        assert self._idle is not None, "async with LeanHttp(...) first"
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            path.encode(),
            self._headers,
            len(body),
        )
        reader, writer = await self._idle.get()
        try:
            writer.write(head + body)
            status = int((await reader.readline()).split(b" ", 2)[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == _CONTENT_LENGTH:
                    length = int(line[15:])
            answer = await reader.readexactly(length)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            writer.close()  # a broken connection is replaced, the request counts as failed
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self._idle.put_nowait((reader, writer))
        return status, answer
