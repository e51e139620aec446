"""What websockets keeps of each station connection, freed by the gateway as soon as it is unused.

Closed station connections are freed at once, not by the next full garbage collection.

websockets (17.x) leaves every closed server connection in reference cycles:

- the protocol's `select_subprotocol` is a closure over the connection;
- the protocol's parser generator stays suspended at its last `yield`, holding the protocol;
- after an abrupt end, the parser's exception holds, through its traceback, the parser's frame.

Only a full collection frees such cycles, and it walks the whole heap: after 10,000 stations
disconnected, a gateway stalled for 0.9 s in one collection (525,000 objects) while serving
the stations still connected. Once the connection is lost, websockets uses none of the three
again, so dropping them lets reference counting free the connection and its protocol.

An open connection keeps its opening handshake (the request's and the response's headers) for
as long as it lives, though nothing reads them once the station is attached: about a quarter of
the objects a connection holds that the collector walks (22 of 86), every full collection of a
storm walking all of them again.
"""

from __future__ import annotations

import functools

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers

# In place of every attached connection's request headers (never changed once there).
_NO_HEADERS = Headers()


def free_when_closed(websocket: ServerConnection) -> None:
    """Drop the connection's reference cycles once its TCP connection is lost."""
    # Resolved at the end of connection_lost(), after the protocol's last use of its parser.
    websocket.connection_lost_waiter.add_done_callback(functools.partial(_break_cycles, websocket))


def _break_cycles(websocket: ServerConnection, _lost: object = None) -> None:
    protocol = websocket.protocol
    vars(protocol).pop("select_subprotocol", None)
    protocol.parser = None  # type: ignore[assignment]
    protocol.parser_exc = None


def forget_handshake(websocket: ServerConnection) -> None:
    """Drop the opening handshake's headers once nothing reads them any more. The request
    itself stays (websockets takes a connection without one for one still in its handshake),
    with its path."""
    if websocket.request is not None:
        websocket.request.headers = _NO_HEADERS
    websocket.response = None
