"""Data frames assembled into messages, as both Sans-I/O sockets use them."""

from __future__ import annotations

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol

from csms.websocket_io import MessageAssembler


def _open_protocol() -> ServerProtocol:
    return ServerProtocol(state=OPEN)


def test_whole_and_fragmented_messages_come_out_whole() -> None:
    assembler, protocol = MessageAssembler(), _open_protocol()

    assert assembler.message(Frame(Opcode.TEXT, "é".encode()), protocol) == "é"
    assert assembler.message(Frame(Opcode.BINARY, b"\x00\x01"), protocol) == b"\x00\x01"
    assert assembler.message(Frame(Opcode.TEXT, b"[2,", fin=False), protocol) is None
    assert assembler.message(Frame(Opcode.PING, b""), protocol) is None  # between fragments
    assert assembler.message(Frame(Opcode.CONT, b'"1",', fin=False), protocol) is None
    assert assembler.message(Frame(Opcode.CONT, b'"Heartbeat",{}]'), protocol) == (
        '[2,"1","Heartbeat",{}]'
    )


def test_a_continuation_without_a_start_is_no_message() -> None:
    assert MessageAssembler().message(Frame(Opcode.CONT, b"x"), _open_protocol()) is None


def test_a_text_message_that_is_not_utf8_fails_the_connection_with_1007() -> None:
    protocol = _open_protocol()

    assert MessageAssembler().message(Frame(Opcode.TEXT, b"\xff\xfe"), protocol) is None
    assert protocol.state is State.CLOSING
    assert protocol.close_sent is not None
    assert protocol.close_sent.code == 1007
