"""A minimal HTTP health endpoint for processes that serve no HTTP of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def serve_health(host: str, port: int, healthy: Callable[[], bool]) -> asyncio.Server:
    """Answer `GET /health` with 200 while `healthy()` holds, 503 otherwise."""

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            ok = request_line.startswith(b"GET /health ") and healthy()
            status = b"200 OK" if ok else b"503 Service Unavailable"
            body = b"ok\n" if ok else b"unavailable\n"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(respond, host, port)
