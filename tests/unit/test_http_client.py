"""The benchmark's keep-alive client: a connection the server closed while idle is replaced, and
the request goes again; an answer cut short is an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from benchmarks.http_client import HttpError, KeepAlivePool

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


async def _serve(serve: Serve) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free port; yields its URL and the client ports it accepted, in order."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername")[1])
        try:
            await serve(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", accepted


@pytest.fixture
async def one_per_connection() -> AsyncIterator[tuple[str, list[int]]]:
    """Answers one request, then closes the connection as if its keep-alive timed out."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_ANSWER)
        await writer.drain()

    async for served in _serve(serve):
        yield served


@pytest.fixture
async def cut_short() -> AsyncIterator[tuple[str, list[int]]]:
    """Reads a request and sends half an answer."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_ANSWER[:20])
        await writer.drain()

    async for served in _serve(serve):
        yield served


async def test_a_connection_closed_while_idle_is_replaced_and_the_request_sent_again(
    one_per_connection: tuple[str, list[int]],
) -> None:
    url, connections = one_per_connection
    pool = KeepAlivePool(url, 1)
    try:
        assert await pool.request("POST", "/x", {"a": 1}) == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed the idle connection
        assert await pool.request("POST", "/x", {"a": 2}) == (200, b"ok")
    finally:
        await pool.close()
    assert len(connections) == 2


async def test_an_answer_cut_short_is_an_error(cut_short: tuple[str, list[int]]) -> None:
    url, _ = cut_short
    pool = KeepAlivePool(url, 1)
    try:
        with pytest.raises(HttpError, match="IncompleteReadError"):
            await pool.request("POST", "/x", {"a": 1})
        # The dropped connection's place is free again.
        with pytest.raises(HttpError):
            await pool.request("POST", "/x", {"a": 1})
    finally:
        await pool.close()
