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
        #: idle connections, the most recently used first (the others may time out unused)
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None
        self._idle = None

    async def __aenter__(self) -> LeanHttp:
        self._idle = asyncio.LifoQueue()
        for _ in range(self.connections):
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._idle is not None
        while not self._idle.empty():
            _reader, writer = self._idle.get_nowait()
            writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """``(status, body)`` of ``POST path`` with the JSON ``body``.

        A connection the server closed while idle (uvicorn after 5 s) is replaced and the request
        sent once more: safe here, the decision API answers a repeated ``txId`` without
        recording it twice.
        """
        assert self._idle is not None, "async with LeanHttp(...) first"
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            path.encode(),
            self._headers,
            len(body),
            body,
        )
        reader, writer = await self._idle.get()
        for attempt in (1, 2):
            try:
                answer = await _exchange(reader, writer, request)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                writer.close()
                reader, writer = await asyncio.open_connection(self.host, self.port)
                if attempt == 2:
                    self._idle.put_nowait((reader, writer))
                    raise
                continue
            self._idle.put_nowait((reader, writer))
            return answer
        raise AssertionError("unreachable")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line[:15].lower() == _CONTENT_LENGTH:
            length = int(line[15:])
    return status, await reader.readexactly(length)
