"""What both ends of our Sans-I/O WebSockets share: the gateway's station sockets (ADR 0022) and
the simulator's (ADR 0019) put websockets' protocol on an asyncio transport, and both assemble
data frames into messages and write the protocol's output alike."""

from __future__ import annotations

import asyncio

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol


class MessageAssembler:
    """Data frames in, whole messages out; control frames are the protocol's business."""

    __slots__ = ("_fragments", "_text")

    def __init__(self) -> None:
        # The fragments of a message still arriving (None between messages).
        self._fragments: list[bytes] | None = None
        self._text = False

    def message(self, frame: Frame, protocol: Protocol) -> str | bytes | None:
        """The message `frame` completes, or None: a control frame, a fragment, or a text
        message that is not UTF-8 (the connection is then failed with 1007)."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            text = opcode is Opcode.TEXT
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._text = text
                return None
            data = bytes(frame.data)
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return None
            data, text, self._fragments = b"".join(self._fragments), self._text, None
        else:
            return None
        if not text:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:
            protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            return None


def write_pending(protocol: Protocol, transport: asyncio.Transport) -> None:
    """Write what the protocol has to send; an empty chunk means the stream ends there."""
    for data in protocol.data_to_send():
        if data:
            transport.write(data)
        elif transport.can_write_eof():
            # Half-close: the peer closes the TCP connection in turn.
            transport.write_eof()
        else:
            # TLS has no half-close.
            transport.close()
