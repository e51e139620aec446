"""The gateway's permessage-deflate sends the smallest messages plain and the rest compressed."""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode

from csms.config import Settings
from csms_gateway.deflate import PLAIN_BELOW_BYTES, SmallPlainDeflate, SmallPlainDeflateFactory

EMPTY_RESULT = b'[3,"0f1c3c52-3a8e-4c57-9d0e-2b6e0c1f4a77",{}]'
HEARTBEAT_RESULT = b'[3,"7a5e...",{"currentTime":"2026-11-29T20:11:02.123Z"}]' + b" " * 20


def negotiated() -> tuple[SmallPlainDeflate, PerMessageDeflate]:
    """The gateway's side and a station's side of one negotiation."""
    client_factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    server_factory = SmallPlainDeflateFactory(server_max_window_bits=10, client_max_window_bits=10)
    response, server = server_factory.process_request_params(
        client_factory.get_request_params(), []
    )
    client = client_factory.process_response_params(response, [])
    assert isinstance(server, SmallPlainDeflate)
    return server, client


def test_small_messages_go_plain_and_larger_ones_compressed() -> None:
    server, _ = negotiated()
    assert len(EMPTY_RESULT) < PLAIN_BELOW_BYTES <= len(HEARTBEAT_RESULT)

    plain = server.encode(Frame(Opcode.TEXT, EMPTY_RESULT))
    compressed = server.encode(Frame(Opcode.TEXT, HEARTBEAT_RESULT))

    assert not plain.rsv1
    assert plain.data == EMPTY_RESULT
    assert compressed.rsv1
    assert len(compressed.data) < len(HEARTBEAT_RESULT)


def test_a_station_decodes_plain_messages_between_compressed_ones() -> None:
    # With context takeover each side's window holds the compressed messages only: skipping one
    # must leave the station's inflater in step with the gateway's deflater.
    server, client = negotiated()
    messages = [HEARTBEAT_RESULT, EMPTY_RESULT, HEARTBEAT_RESULT, EMPTY_RESULT, HEARTBEAT_RESULT]

    received = [client.decode(server.encode(Frame(Opcode.TEXT, m))).data for m in messages]

    assert received == messages


def test_fragments_and_control_frames_keep_the_standard_encoding() -> None:
    server, _ = negotiated()

    first = server.encode(Frame(Opcode.TEXT, b"[2,", fin=False))
    ping = server.encode(Frame(Opcode.PING, b"p"))

    assert first.rsv1
    assert not ping.rsv1
    assert ping.data == b"p"


async def test_over_a_connection_with_compression() -> None:
    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    sizes = [10, 200, 1, 5000, 63, 64, 2]
    async with serve(
        echo, "127.0.0.1", 0, compression=None, extensions=[SmallPlainDeflateFactory()]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression="deflate") as client:
            assert client.response is not None
            assert "permessage-deflate" in client.response.headers["Sec-WebSocket-Extensions"]
            for size in sizes:
                await client.send("x" * size)
                assert await client.recv() == "x" * size


def test_the_threshold_is_a_setting_and_zero_compresses_every_message() -> None:
    client_factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    _, server = SmallPlainDeflateFactory(plain_below=0).process_request_params(
        client_factory.get_request_params(), []
    )

    assert server.encode(Frame(Opcode.TEXT, EMPTY_RESULT)).rsv1
    assert Settings().deflate_plain_below == PLAIN_BELOW_BYTES
    assert Settings(deflate_plain_below=0).deflate_plain_below == 0
