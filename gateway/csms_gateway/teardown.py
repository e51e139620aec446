"""Closed station connections are freed at once, not by the next full garbage collection.

websockets (17.x) leaves every closed server connection in reference cycles:

- the protocol's `select_subprotocol` is a closure over the connection;
- the protocol's parser generator stays suspended at its last `yield`, holding the protocol;
- after an abrupt end, the parser's exception holds, through its traceback, the parser's frame.

Only a full collection frees such cycles, and it walks the whole heap: after 10,000 stations
disconnected, a gateway stalled for 0.9 s in one collection (525,000 objects) while serving
the stations still connected. Once the connection is lost, websockets uses none of the three
again, so dropping them lets reference counting free the connection and its protocol.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection


def free_when_closed(websocket: ServerConnection) -> None:
    """Drop the connection's reference cycles once its TCP connection is lost."""
    # Resolved at the end of connection_lost(), after the protocol's last use of its parser.
    websocket.connection_lost_waiter.add_done_callback(lambda _: _break_cycles(websocket))


def _break_cycles(websocket: ServerConnection) -> None:
    protocol = websocket.protocol
    vars(protocol).pop("select_subprotocol", None)
    protocol.parser = None  # type: ignore[assignment]
    protocol.parser_exc = None
