"""A minimal HTTP/1.1 keep-alive client for load driving.

Why not httpx: its async connection pool scans every waiting request on each
assignment, which capped the driver near 200 requests/s on this machine while
the receiver itself answers thousands per second. A load driver must be faster
than what it measures, so requests go over a fixed set of raw asyncio streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

__all__ = ["RawHttpPool"]


class RawHttpPool:
    """`size` kept-alive connections to one host; `post` borrows one per request."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = host
        self.port = port
        self.size = size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )

    async def open(self) -> RawHttpPool:
        for _ in range(self.size):
            self._idle.put_nowait(None)  # connect lazily, on first use
        return self

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        """Send one POST; return the status code (raises OSError on a broken connection)."""
        connection = await self._idle.get()
        try:
            if connection is None:
                connection = await asyncio.open_connection(self.host, self.port)
            status = await self._exchange(connection, path, headers, body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if connection is not None:
                connection[1].close()
            self._idle.put_nowait(None)
            raise OSError(f"connection to {self.host}:{self.port} broke") from None
        self._idle.put_nowait(connection)
        return status

    async def _exchange(
        self,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        path: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> int:
        reader, writer = connection
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(head[9:12])

    async def aclose(self) -> None:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            if connection is not None:
                connection[1].close()
