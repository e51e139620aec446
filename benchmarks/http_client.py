"""A lean HTTP/1.1 client for the commands scenario: keep-alive connections to one server,
each carrying one request at a time.

A general-purpose client costs several milliseconds of CPU per request under load (connection
pool bookkeeping, header models); on a machine the load generator shares with the system under
test, that CPU is taken from the system being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import orjson


class HttpError(Exception):
    """The exchange failed (connection refused or dropped, malformed answer)."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class KeepAlivePool:
    """At most `size` connections; a request waits for a free one (the wait is the caller's)."""

    def __init__(self, base_url: str, size: int) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        # None stands for a connection not opened yet (or dropped): opened when taken.
        self._free: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._free.put_nowait(None)
        self._opened: set[_Connection] = set()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request; return the status code and the body."""
        connection = await self._free.get()
        try:
            if connection is None:
                connection = await self._connect()
                answer = await self._exchange(connection, method, path, body)
            else:
                try:
                    answer = await self._exchange(connection, method, path, body)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        raise
                    # Closed before any answer: the server dropped the idle connection (its
                    # keep-alive timeout), so the request goes again, once, on a new one.
                    self._forget(connection)
                    connection = await self._connect()
                    answer = await self._exchange(connection, method, path, body)
            status, content, keep_alive = answer
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self._drop(connection)
            raise HttpError(type(e).__name__) from e
        except BaseException:
            self._drop(connection)
            raise
        if keep_alive:
            self._free.put_nowait(connection)
        else:
            self._drop(connection)
        return status, content

    async def close(self) -> None:
        for connection in list(self._opened):
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
        self._opened.clear()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        connection = _Connection(reader, writer)
        self._opened.add(connection)
        return connection

    def _drop(self, connection: _Connection | None) -> None:
        if connection is not None:
            self._forget(connection)
        self._free.put_nowait(None)

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._opened.discard(connection)

    async def _exchange(
        self, connection: _Connection, method: str, path: str, body: Any
    ) -> tuple[int, bytes, bool]:
        payload = b"" if body is None else orjson.dumps(body)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Length: {len(payload)}\r\n"
        )
        if body is not None:
            head += "Content-Type: application/json\r\n"
        connection.writer.write(head.encode("ascii") + b"\r\n" + payload)
        raw = await connection.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ValueError("answer without Content-Length")
        content = await connection.reader.readexactly(int(headers["content-length"]))
        return status, content, headers.get("connection", "").lower() != "close"
