"""A bus message carrying many stations' messages: stored together, and a bad one fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.bus import topology
from csms.bus.envelopes import StationMessage, pack_batch
from csms.bus.memory import MemoryBus
from csms.bus.message import BusError, BusMessage
from csms.config import Settings
from csms.db.engine import create_session_factory
from csms.db.models import ConnectorStatus, EventData, Station
from csms.timeutil import format_datetime
from csms_events_worker.consumer import EventsWorker

pytestmark = pytest.mark.services

STATUS_KEY = topology.ocpp_key("StatusNotification")


@pytest.fixture
async def station_id(engine: AsyncEngine) -> AsyncIterator[str]:
    """A station identity prefix of this test's own. The stations its boots committed are
    deleted afterwards: other tests of the shared database list every station."""
    prefix = f"IT-{uuid.uuid4().hex[:16]}"
    yield prefix
    async with engine.begin() as connection:
        await connection.execute(delete(Station).where(Station.id.startswith(prefix)))


@contextlib.asynccontextmanager
async def _worker(engine: AsyncEngine) -> AsyncIterator[MemoryBus]:
    """A worker consuming from an in-process bus that redelivers once; yields the bus."""
    bus = MemoryBus(max_redeliveries=1)
    await bus.connect()
    worker = EventsWorker(bus, create_session_factory(engine), Settings(amqp_url=None))
    await worker.start()
    try:
        yield bus
    finally:
        await worker.stop()
        await bus.close()


def _status(station_id: str, connector_status: Any) -> StationMessage:
    now = format_datetime(datetime.now(UTC))
    return {
        "stationId": station_id,
        "connectionId": "c",
        "gatewayId": "gw",
        "ocppMessageId": "m1",
        "action": "StatusNotification",
        "payload": {
            "timestamp": now,
            "connectorStatus": connector_status,
            "evseId": 1,
            "connectorId": 1,
        },
        "receivedAt": now,
    }


async def _statuses(engine: AsyncEngine, station_ids: list[str]) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        rows = await session.scalars(
            select(ConnectorStatus).where(ConnectorStatus.station_id.in_(station_ids))
        )
        return {row.station_id: row.status for row in rows}


async def test_a_batch_is_stored_and_a_bad_message_in_it_does_not_take_the_others_along(
    engine: AsyncEngine, station_id: str
) -> None:
    good = [f"{station_id}-{n}" for n in range(3)]
    async with _worker(engine) as bus:
        await asyncio.wait_for(
            bus.publish(
                topology.EVENTS_EXCHANGE,
                STATUS_KEY,
                BusMessage(
                    body=dict(pack_batch([_status(s, "Occupied") for s in good])),
                    type=STATUS_KEY,
                ),
            ),
            10,
        )
        assert await _statuses(engine, good) == dict.fromkeys(good, "Occupied")

        # A status the database refuses (status is NOT NULL) between two good ones.
        mixed = [_status(good[0], "Faulted"), _status(good[1], None), _status(good[2], "Faulted")]
        with pytest.raises(BusError):
            await asyncio.wait_for(
                bus.publish(
                    topology.EVENTS_EXCHANGE,
                    STATUS_KEY,
                    BusMessage(body=dict(pack_batch(mixed)), type=STATUS_KEY),
                ),
                20,
            )
        assert await _statuses(engine, good) == {
            good[0]: "Faulted",
            good[1]: "Occupied",
            good[2]: "Faulted",
        }
        assert len(bus.dead_letters) == 1


def _boot(station_id: str, charging_station: Any) -> StationMessage:
    now = format_datetime(datetime.now(UTC))
    return {
        "stationId": station_id,
        "connectionId": f"{station_id}-c",
        "gatewayId": "gw",
        "ocppMessageId": "b1",
        "action": "BootNotification",
        "payload": {"reason": "PowerUp", "chargingStation": charging_station},
        "receivedAt": now,
    }


async def test_a_batch_of_boots_gets_one_answer_each_and_a_bad_one_an_error(
    engine: AsyncEngine, station_id: str
) -> None:
    ids = [f"{station_id}-{n}" for n in range(3)]
    sim = {"model": "M", "vendorName": "V"}
    boots = [_boot(ids[0], sim), _boot(ids[1], {"model": "no vendor"}), _boot(ids[2], sim)]
    key = topology.ocpp_key("BootNotification")
    async with _worker(engine) as bus:
        reply = await bus.request(
            topology.EVENTS_EXCHANGE,
            key,
            BusMessage(body=dict(pack_batch(boots)), type=key),
            timeout=10,
        )
        first, bad, third = reply["replies"]
        assert first == third == {"status": "Accepted", "interval": 300}
        assert "KeyError" in bad["error"]
        async with create_session_factory(engine)() as session:
            stored = await session.scalars(
                select(Station.id).where(Station.id.in_(ids), Station.boot_status == "Accepted")
            )
            assert sorted(stored) == [ids[0], ids[2]]
        assert bus.dead_letters == []


async def test_bus_messages_carrying_more_station_messages_than_one_statement_binds_are_stored(
    engine: AsyncEngine, station_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two bus messages of 5,500 NotifyEvents each, taken as one batch: looking them all up at
    once would bind more than the 32,767 parameters a statement may have, so the worker stores
    them in several transactions (rather than failing and storing one event at a time), and
    every event is kept."""
    key = topology.ocpp_key("NotifyEvent")
    ids = [[f"{station_id}-{batch}-{n}" for n in range(5500)] for batch in range(2)]
    async with _worker(engine) as bus:
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    bus.publish(
                        topology.EVENTS_EXCHANGE,
                        key,
                        BusMessage(body=dict(pack_batch([_event(s) for s in batch])), type=key),
                    )
                    for batch in ids
                )
            ),
            120,
        )
        async with create_session_factory(engine)() as session:
            stored = await session.scalar(
                select(func.count())
                .select_from(EventData)
                .where(EventData.station_id.like(f"{station_id}-%"))
            )
        assert stored == 11000
        assert bus.dead_letters == []
        assert not [r for r in caplog.records if "retrying one by one" in r.getMessage()]


def _event(station_id: str) -> StationMessage:
    now = format_datetime(datetime.now(UTC))
    item = {
        "eventId": 1,
        "timestamp": now,
        "trigger": "Delta",
        "actualValue": "true",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector"},
        "variable": {"name": "Problem"},
    }
    return {
        "stationId": station_id,
        "connectionId": "c",
        "gatewayId": "gw",
        "ocppMessageId": "e1",
        "action": "NotifyEvent",
        "payload": {"generatedAt": now, "seqNo": 0, "eventData": [item]},
        "receivedAt": now,
    }
