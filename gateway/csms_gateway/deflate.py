"""permessage-deflate that leaves the smallest messages uncompressed.

RFC 7692 marks each message as compressed or not (the "Per-Message Compressed" bit, RSV1), and
a receiver inflates only the marked ones, so a sender may send any message plain. Most of what
a CSMS sends is an empty CALLRESULT (`[3,"<id>",{}]`, answering StatusNotification, NotifyEvent
and the like): deflate saves at most a few bytes of it, far less than the packet's own headers,
for a zlib call that was one of the gateway's larger costs per message (ADR 0017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

# The default size under which messages go uncompressed. An empty CALLRESULT with a UUID
# message id is 45 bytes and deflates (context takeover, 1 KiB window) to about 38; a
# Heartbeat's answer (about 85 bytes) repeats most of the previous one and about halves, so it
# stays compressed.
PLAIN_BELOW_BYTES = 64


class SmallPlainDeflate(PerMessageDeflate):
    def __init__(self, *args: Any, plain_below: int = PLAIN_BELOW_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain_below = plain_below

    def encode(self, frame: Frame) -> Frame:
        # Only a whole message in one frame: a fragmented message is marked on its first frame.
        if frame.fin and frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            if len(frame.data) < self.plain_below:
                return frame
        return super().encode(frame)


class SmallPlainDeflateFactory(ServerPerMessageDeflateFactory):
    """The standard server-side negotiation, with `SmallPlainDeflate` as the outcome."""

    def __init__(self, *, plain_below: int = PLAIN_BELOW_BYTES, **options: Any) -> None:
        super().__init__(**options)
        self._plain_below = plain_below

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        extension = SmallPlainDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
            plain_below=self._plain_below,
        )
        return response, extension
