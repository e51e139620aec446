"""The AMQP bus across a lost broker connection: a gateway's station bindings come back."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from urllib.parse import unquote, urlsplit

import pytest

from csms.bus import topology
from csms.bus.amqp import AmqpBus
from csms.bus.message import Body, BusMessage, Unroutable

pytestmark = pytest.mark.integration


async def test_station_bindings_are_restored_after_a_reconnect(amqp_url: str) -> None:
    bus = AmqpBus(amqp_url)
    await bus.connect()
    try:

        async def handler(message: BusMessage) -> Body:
            return {"station": message.body["stationId"]}

        suffix = uuid.uuid4().hex[:8]
        kept, gone = f"S-kept-{suffix}", f"S-gone-{suffix}"
        await bus.open_inbox(f"gateway.reconnect.{suffix}", handler)
        await bus.bind_inbox(kept)
        await bus.bind_inbox(gone)
        await bus.unbind_inbox(gone)

        # The broker drops the connection. The exclusive inbox dies with it; the bus declares
        # it again on reconnecting and must bind the stations it still holds.
        connection = bus._connection
        assert connection is not None
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        vhost = unquote(urlsplit(amqp_url).path.removeprefix("/"))
        subprocess.run(
            ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "test: dropped"],
            check=True,
            timeout=60,
        )
        await asyncio.wait_for(reconnected.wait(), 30)

        command = BusMessage(body={"stationId": kept}, type=topology.COMMAND)
        reply = await bus.request(
            topology.COMMANDS_EXCHANGE, kept, command, timeout=5, mandatory=True
        )
        assert reply == {"station": kept}
        with pytest.raises(Unroutable):
            await bus.request(
                topology.COMMANDS_EXCHANGE,
                gone,
                BusMessage(body={"stationId": gone}, type=topology.COMMAND),
                timeout=5,
                mandatory=True,
            )
    finally:
        await bus.close()
