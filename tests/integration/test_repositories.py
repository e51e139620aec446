"""The repositories of csms.db against real Postgres and SQLite, migrated with Alembic.

Every test runs twice (`database_url` is parametrized) in a session that is rolled back at the
end. Repositories commit nothing; `flush` makes earlier writes visible to later queries, and
rows changed by Core statements are re-read with `populate_existing`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db import boots, commands, events, presence, stations, statuses
from csms.db.boots import BootPolicy
from csms.db.commands import Outcome
from csms.db.events import Gap
from csms.db.models import (
    BootNotification,
    Command,
    ConnectorStatus,
    EventData,
    EventGap,
    EventSequence,
    Gateway,
    Station,
    StationConnection,
    StatusNotification,
)
from csms.timeutil import format_datetime, utcnow

POLICY = BootPolicy(unknown_station_status="Accepted", heartbeat_interval=300, retry_interval=60)


def new_id() -> str:
    return str(uuid.uuid4())


async def station_row(session: AsyncSession, station_id: str) -> Station:
    station = await session.get(Station, station_id, populate_existing=True)
    assert station is not None
    return station


async def count(session: AsyncSession, model: Any, station_id: str) -> int:
    total = await session.scalar(
        select(func.count()).select_from(model).where(model.station_id == station_id)
    )
    return int(total or 0)


# --- statuses -------------------------------------------------------------------------------


async def record_status(
    session: AsyncSession,
    station_id: str,
    status: str,
    status_at: datetime,
    *,
    evse_id: int = 1,
    connector_id: int = 1,
) -> None:
    await statuses.record_status(
        session,
        station_id=station_id,
        evse_id=evse_id,
        connector_id=connector_id,
        status=status,
        status_at=status_at,
        received_at=datetime.now(UTC),
    )
    await session.flush()


async def current_status(
    session: AsyncSession, station_id: str, evse_id: int = 1, connector_id: int = 1
) -> ConnectorStatus:
    row = await session.get(
        ConnectorStatus, (station_id, evse_id, connector_id), populate_existing=True
    )
    assert row is not None
    return row


async def status_history(session: AsyncSession, station_id: str) -> list[tuple[str, datetime]]:
    rows = await session.scalars(
        select(StatusNotification)
        .where(StatusNotification.station_id == station_id)
        .order_by(StatusNotification.status_at, StatusNotification.status)
    )
    return [(row.status, row.status_at) for row in rows]


async def test_newest_status_by_station_timestamp_wins(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)

    await record_status(session, station_id, "Available", t0)
    await record_status(session, station_id, "Occupied", t0 + timedelta(seconds=5))

    current = await current_status(session, station_id)
    assert (current.status, current.status_at) == ("Occupied", t0 + timedelta(seconds=5))


async def test_an_older_status_arriving_later_never_overwrites(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await record_status(session, station_id, "Occupied", t0 + timedelta(seconds=5))

    await record_status(session, station_id, "Available", t0)
    await record_status(session, station_id, "Faulted", t0 + timedelta(microseconds=1))

    current = await current_status(session, station_id)
    assert (current.status, current.status_at) == ("Occupied", t0 + timedelta(seconds=5))
    assert len(await status_history(session, station_id)) == 3


async def test_status_is_current_per_connector(session: AsyncSession, station_id: str) -> None:
    t0 = datetime.now(UTC)

    await record_status(session, station_id, "Occupied", t0 + timedelta(seconds=5), connector_id=1)
    await record_status(session, station_id, "Available", t0, connector_id=2)
    await record_status(session, station_id, "Faulted", t0, evse_id=2, connector_id=1)

    assert (await current_status(session, station_id, 1, 1)).status == "Occupied"
    assert (await current_status(session, station_id, 1, 2)).status == "Available"
    assert (await current_status(session, station_id, 2, 1)).status == "Faulted"


async def test_status_history_keeps_every_distinct_notification_once(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    t1 = t0 + timedelta(seconds=1)

    await record_status(session, station_id, "Available", t0)
    await record_status(session, station_id, "Occupied", t1)
    await record_status(session, station_id, "Occupied", t1)  # repeated: stored once
    await record_status(session, station_id, "Faulted", t1)  # same time, other status
    await record_status(session, station_id, "Available", t0)  # late repeat of the first

    assert await status_history(session, station_id) == [
        ("Available", t0),
        ("Faulted", t1),
        ("Occupied", t1),
    ]


# --- boots ----------------------------------------------------------------------------------


def boot_payload(**charging_station: Any) -> dict[str, Any]:
    return {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "Acme", "model": "AC-22", **charging_station},
    }


async def record_boot(
    session: AsyncSession,
    station_id: str,
    *,
    received_at: datetime | None = None,
    connection_id: str | None = None,
    message_id: str | None = None,
    payload: dict[str, Any] | None = None,
    policy: BootPolicy = POLICY,
) -> boots.BootDecision:
    decision = await boots.record_boot(
        session,
        station_id=station_id,
        connection_id=connection_id or new_id(),
        ocpp_message_id=message_id or new_id(),
        payload=payload or boot_payload(),
        received_at=received_at or datetime.now(UTC),
        policy=policy,
    )
    await session.flush()
    return decision


async def register(session: AsyncSession, station_id: str, **columns: Any) -> None:
    session.add(Station(id=station_id, created_at=datetime.now(UTC), **columns))
    await session.flush()


async def test_unknown_station_accepted_by_policy_gets_the_default_heartbeat(
    session: AsyncSession, station_id: str
) -> None:
    decision = await record_boot(session, station_id)

    assert decision == boots.BootDecision("Accepted", 300)
    assert (await station_row(session, station_id)).boot_status == "Accepted"


async def test_unknown_station_pending_by_policy_gets_the_retry_interval(
    session: AsyncSession, station_id: str
) -> None:
    policy = BootPolicy(unknown_station_status="Pending", heartbeat_interval=300, retry_interval=45)

    decision = await record_boot(session, station_id, policy=policy)

    assert decision == boots.BootDecision("Pending", 45)


async def test_station_registered_pending_gets_pending_with_the_retry_interval(
    session: AsyncSession, station_id: str
) -> None:
    await register(session, station_id, registration_status="Pending")

    decision = await record_boot(session, station_id)

    assert decision == boots.BootDecision("Pending", 60)
    assert (await station_row(session, station_id)).boot_status == "Pending"


async def test_station_heartbeat_interval_overrides_the_default(
    session: AsyncSession, station_id: str
) -> None:
    await register(session, station_id, registration_status="Accepted", heartbeat_interval=120)

    decision = await record_boot(session, station_id)

    assert decision == boots.BootDecision("Accepted", 120)


async def test_redelivered_boot_returns_the_first_decision_and_is_stored_once(
    session: AsyncSession, station_id: str
) -> None:
    connection_id, message_id = new_id(), new_id()
    first = await record_boot(
        session, station_id, connection_id=connection_id, message_id=message_id
    )
    station = await station_row(session, station_id)
    station.registration_status = "Rejected"  # the operator decides otherwise meanwhile
    await session.flush()

    again = await record_boot(
        session, station_id, connection_id=connection_id, message_id=message_id
    )

    assert first == again == boots.BootDecision("Accepted", 300)
    assert await count(session, BootNotification, station_id) == 1
    # The same message id on another connection is another boot.
    other = await record_boot(session, station_id, message_id=message_id)
    assert other.status == "Rejected"
    assert await count(session, BootNotification, station_id) == 2


async def test_boot_data_lands_on_the_station(session: AsyncSession, station_id: str) -> None:
    received_at = datetime.now(UTC)
    payload = boot_payload(
        serialNumber="SN-0001",
        firmwareVersion="1.2.3",
        modem={"iccid": "8931000000000000001", "imsi": "204040000000001"},
    )

    await record_boot(session, station_id, received_at=received_at, payload=payload)

    station = await station_row(session, station_id)
    assert (
        station.vendor_name,
        station.model,
        station.serial_number,
        station.firmware_version,
        station.modem_iccid,
        station.modem_imsi,
    ) == ("Acme", "AC-22", "SN-0001", "1.2.3", "8931000000000000001", "204040000000001")
    assert station.last_boot_at == received_at
    assert station.last_seen_at == received_at
    stored = (
        await session.scalars(
            select(BootNotification).where(BootNotification.station_id == station_id)
        )
    ).one()
    assert (stored.reason, stored.vendor_name, stored.serial_number, stored.modem_imsi) == (
        "PowerUp",
        "Acme",
        "SN-0001",
        "204040000000001",
    )


async def test_an_older_boot_arriving_later_leaves_the_newer_boot_data(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await record_boot(
        session, station_id, received_at=t0, payload=boot_payload(firmwareVersion="2.0")
    )

    await record_boot(
        session,
        station_id,
        received_at=t0 - timedelta(minutes=1),
        payload=boot_payload(firmwareVersion="1.0"),
    )

    station = await station_row(session, station_id)
    assert (station.firmware_version, station.last_boot_at) == ("2.0", t0)


async def create_reset(
    session: AsyncSession, station_id: str, created_at: datetime
) -> commands.NewCommand:
    command = commands.NewCommand(
        id=new_id(),
        station_id=station_id,
        action="Reset",
        request={"type": "Immediate"},
        created_at=created_at,
    )
    assert await commands.create_command(await session.connection(), command) is not None
    return command


async def answer(
    session: AsyncSession, command: commands.NewCommand, status: str, at: datetime
) -> Command:
    await commands.record_outcome(
        await session.connection(),
        command,
        commands.CommandOutcome(Outcome.ANSWERED, at=at, response={"status": status}),
    )
    row = await session.get(Command, command.id, populate_existing=True)
    assert row is not None
    return row


async def test_a_command_for_a_station_never_seen_is_not_recorded(
    session: AsyncSession, station_id: str
) -> None:
    command = commands.NewCommand(new_id(), station_id, "Reset", {"type": "OnIdle"}, utcnow())

    assert await commands.create_command(await session.connection(), command) is None
    assert await session.get(Command, command.id) is None


async def test_a_recorded_command_is_pending_until_its_outcome(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await presence.ensure_station(session, station_id=station_id, seen_at=t0)
    command = commands.NewCommand(
        new_id(), station_id, "ChangeAvailability", {"operationalStatus": "Operative"}, t0
    )
    # Seen but not connected: recorded, and routed nowhere.
    assert await commands.create_command(
        await session.connection(), command
    ) == commands.CommandRoute(None)
    row = await session.get(Command, command.id)
    assert row is not None
    assert (row.outcome, row.request, row.created_at) == (
        "pending",
        {"operationalStatus": "Operative"},
        t0,
    )

    await commands.record_outcome(
        await session.connection(),
        command,
        commands.CommandOutcome(
            Outcome.CALL_ERROR,
            at=t0 + timedelta(seconds=1),
            error_code="NotSupported",
            error_description="no",
        ),
    )
    row = await session.get(Command, command.id, populate_existing=True)
    assert row is not None
    assert (row.outcome, row.error_code, row.answered_at, row.open) == (
        "callError",
        "NotSupported",
        t0 + timedelta(seconds=1),
        False,
    )


async def test_a_boot_closes_the_reset_acknowledged_before_it(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await presence.ensure_station(session, station_id=station_id, seen_at=t0)
    command = await create_reset(session, station_id, t0)
    row = await answer(session, command, "Accepted", t0 + timedelta(seconds=1))
    assert row.open is True
    assert row.closed_at is None

    booted_at = t0 + timedelta(seconds=20)
    await record_boot(session, station_id, received_at=booted_at)

    await session.refresh(row)
    assert row.open is False
    assert row.closed_at == booted_at
    assert row.answered_at == t0 + timedelta(seconds=1)


async def test_a_reset_acknowledged_after_the_boot_it_caused_is_closed(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await presence.ensure_station(session, station_id=station_id, seen_at=t0)
    command = await create_reset(session, station_id, t0)
    booted_at = t0 + timedelta(seconds=2)
    await record_boot(session, station_id, received_at=booted_at)

    row = await answer(session, command, "Accepted", t0 + timedelta(seconds=3))

    assert row.outcome == Outcome.ANSWERED
    assert row.open is False
    assert row.closed_at == booted_at


async def test_a_boot_before_the_reset_leaves_it_open(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    await record_boot(session, station_id, received_at=t0)
    command = await create_reset(session, station_id, t0 + timedelta(seconds=1))

    row = await answer(session, command, "Scheduled", t0 + timedelta(seconds=2))

    assert (row.open, row.closed_at) == (True, None)


async def test_a_rejected_reset_is_never_open(session: AsyncSession, station_id: str) -> None:
    t0 = datetime.now(UTC)
    await presence.ensure_station(session, station_id=station_id, seen_at=t0)
    command = await create_reset(session, station_id, t0)

    row = await answer(session, command, "Rejected", t0 + timedelta(seconds=1))

    assert (row.open, row.closed_at) == (False, None)


# --- events ---------------------------------------------------------------------------------


def event_item(event_id: int, **optional: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "timestamp": "2026-11-25T08:00:00.250Z",
        "trigger": "Delta",
        "actualValue": "Faulted",
        "eventNotificationType": "HardWiredMonitor",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "AvailabilityState"},
        **optional,
    }


class Reporter:
    """Sends one station's NotifyEvent messages; remembers each so it can be redelivered."""

    def __init__(self, session: AsyncSession, station_id: str) -> None:
        self.session = session
        self.station_id = station_id
        self.sent: list[dict[str, Any]] = []

    async def send(
        self,
        seq_no: int,
        *,
        tbc: bool = False,
        items: list[dict[str, Any]] | None = None,
        generated_at: datetime | None = None,
        received_at: datetime | None = None,
    ) -> list[Gap]:
        generated_at = generated_at or datetime.now(UTC)
        message = {
            "ocpp_message_id": new_id(),
            "payload": {
                "generatedAt": format_datetime(generated_at, "microseconds"),
                "seqNo": seq_no,
                "tbc": tbc,
                "eventData": items or [event_item(seq_no)],
            },
            "generated_at": generated_at,
            "received_at": received_at or datetime.now(UTC),
        }
        self.sent.append(message)
        return await self._record(message)

    async def redeliver(self, index: int) -> list[Gap]:
        return await self._record(self.sent[index])

    async def _record(self, message: dict[str, Any]) -> list[Gap]:
        gaps = await events.record_notify_event(self.session, station_id=self.station_id, **message)
        await self.session.flush()
        return gaps


async def stored_gaps(session: AsyncSession, station_id: str) -> list[tuple[int, int | None]]:
    rows = await session.scalars(
        select(EventGap).where(EventGap.station_id == station_id).order_by(EventGap.id)
    )
    return [(row.expected_seq_no, row.received_seq_no) for row in rows]


async def sequence_of(session: AsyncSession, station_id: str) -> EventSequence:
    sequence = await session.get(EventSequence, station_id, populate_existing=True)
    assert sequence is not None
    return sequence


async def test_a_complete_report_has_no_gaps(session: AsyncSession, station_id: str) -> None:
    reporter = Reporter(session, station_id)

    assert await reporter.send(0, tbc=True) == []
    assert await reporter.send(1, tbc=True) == []
    assert await reporter.send(2) == []

    assert await stored_gaps(session, station_id) == []
    sequence = await sequence_of(session, station_id)
    assert (sequence.expected_seq_no, sequence.report_open) == (0, False)
    assert await count(session, EventData, station_id) == 3


async def test_a_skipped_part_is_a_gap(session: AsyncSession, station_id: str) -> None:
    reporter = Reporter(session, station_id)
    await reporter.send(0, tbc=True)

    gaps = await reporter.send(2)

    assert gaps == [Gap(station_id, 1, 2)]
    assert await stored_gaps(session, station_id) == [(1, 2)]


async def test_a_new_report_while_one_is_unfinished_is_a_gap(
    session: AsyncSession, station_id: str
) -> None:
    reporter = Reporter(session, station_id)
    await reporter.send(0, tbc=True)
    await reporter.send(1, tbc=True)

    gaps = await reporter.send(0)

    assert gaps == [Gap(station_id, 2, 0)]
    assert await stored_gaps(session, station_id) == [(2, 0)]


async def test_a_report_starting_past_zero_is_a_gap(session: AsyncSession, station_id: str) -> None:
    gaps = await Reporter(session, station_id).send(3)

    assert gaps == [Gap(station_id, 0, 3)]
    assert await stored_gaps(session, station_id) == [(0, 3)]


async def test_a_redelivered_message_stores_nothing_and_adds_no_gap(
    session: AsyncSession, station_id: str
) -> None:
    reporter = Reporter(session, station_id)
    await reporter.send(0, tbc=True)
    await reporter.send(1, tbc=True)

    assert await reporter.redeliver(1) == []  # while the report is open
    assert await reporter.send(2) == []
    assert await reporter.redeliver(1) == []  # after it finished: seqNo 1 is no new report
    assert await reporter.redeliver(0) == []

    assert await count(session, EventData, station_id) == 3
    assert await stored_gaps(session, station_id) == []
    sequence = await sequence_of(session, station_id)
    assert (sequence.expected_seq_no, sequence.report_open) == (0, False)


async def test_each_event_item_is_stored_with_its_optional_fields(
    session: AsyncSession, station_id: str
) -> None:
    generated_at = datetime.now(UTC)
    received_at = generated_at + timedelta(milliseconds=30)
    full = event_item(
        7,
        cause=5,
        techCode="E42",
        techInfo="contactor welded",
        cleared=True,
        transactionId="tx-0001",
        variableMonitoringId=11,
    )
    bare = event_item(8, trigger="Alerting", actualValue="Available")

    await Reporter(session, station_id).send(
        0, items=[full, bare], generated_at=generated_at, received_at=received_at
    )

    rows = (
        await session.scalars(
            select(EventData).where(EventData.station_id == station_id).order_by(EventData.id)
        )
    ).all()
    assert [
        (row.item_index, row.event_id, row.trigger, row.actual_value, row.seq_no, row.tbc)
        for row in rows
    ] == [(0, 7, "Delta", "Faulted", 0, False), (1, 8, "Alerting", "Available", 0, False)]
    first, second = rows
    assert (
        first.cause,
        first.tech_code,
        first.tech_info,
        first.cleared,
        first.transaction_id,
        first.variable_monitoring_id,
    ) == (5, "E42", "contactor welded", True, "tx-0001", 11)
    assert (
        second.cause,
        second.tech_code,
        second.tech_info,
        second.cleared,
        second.transaction_id,
        second.variable_monitoring_id,
    ) == (None, None, None, None, None, None)
    assert first.occurred_at == datetime(2026, 11, 25, 8, 0, 0, 250000, tzinfo=UTC)
    assert first.event_notification_type == "HardWiredMonitor"
    assert first.component == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    assert first.variable == {"name": "AvailabilityState"}
    assert (first.generated_at, first.received_at) == (generated_at, received_at)


async def test_a_report_left_unfinished_is_closed_as_a_gap_once(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    idle_station, busy_station = f"{station_id}-a", f"{station_id}-b"
    await Reporter(session, idle_station).send(
        0, tbc=True, generated_at=t0, received_at=t0 + timedelta(seconds=1)
    )
    await Reporter(session, busy_station).send(
        0, tbc=True, generated_at=t0, received_at=t0 + timedelta(minutes=10)
    )
    ours = {idle_station, busy_station}
    now = t0 + timedelta(minutes=6)

    gaps = await events.close_unfinished_reports(
        session, idle_since=t0 + timedelta(minutes=5), now=now
    )
    await session.flush()

    assert [gap for gap in gaps if gap.station_id in ours] == [Gap(idle_station, 1, None)]
    stored = (
        await session.scalars(select(EventGap).where(EventGap.station_id == idle_station))
    ).one()
    assert (stored.expected_seq_no, stored.received_seq_no) == (1, None)
    assert (stored.generated_at, stored.detected_at) == (t0, now)
    sequence = await sequence_of(session, idle_station)
    assert (sequence.expected_seq_no, sequence.report_open) == (0, False)
    assert (await sequence_of(session, busy_station)).report_open is True

    again = await events.close_unfinished_reports(
        session, idle_since=t0 + timedelta(minutes=5), now=now + timedelta(minutes=1)
    )
    await session.flush()

    assert [gap for gap in again if gap.station_id in ours] == []
    assert await stored_gaps(session, idle_station) == [(1, None)]
    assert await stored_gaps(session, busy_station) == []


# --- presence -------------------------------------------------------------------------------


async def connect(
    session: AsyncSession, station_id: str, connection_id: str, at: datetime, gateway: str = "gw"
) -> Station:
    station = await presence.record_connected(
        session,
        station_id=station_id,
        connection_id=connection_id,
        gateway_id=gateway,
        connected_at=at,
    )
    await session.flush()
    return station


async def disconnect(
    session: AsyncSession,
    station_id: str,
    connection_id: str,
    at: datetime,
    *,
    gateway: str = "gw",
    last_seen_at: datetime | None = None,
) -> None:
    await presence.record_disconnected(
        session,
        station_id=station_id,
        connection_id=connection_id,
        gateway_id=gateway,
        disconnected_at=at,
        last_seen_at=last_seen_at,
    )
    await session.flush()


async def test_a_newer_connection_on_another_gateway_replaces_the_open_one(
    session: AsyncSession, station_id: str
) -> None:
    """The connection a new one replaces is reported, so that its gateway can close it; not
    when it is on the same gateway (which replaced it already), nor for an older connection."""
    t0 = datetime.now(UTC)

    async def connected(connection_id: str, gateway: str, at: datetime) -> list[presence.Replaced]:
        recorded = await presence.record_connections(
            session, [presence.Connection(connection_id, station_id, gateway, at)]
        )
        return recorded.replaced

    assert await connected("c1", "gwA", t0) == []
    assert await connected("c2", "gwB", t0 + timedelta(seconds=1)) == [
        presence.Replaced(station_id, "c1", "gwA")
    ]
    assert await connected("c3", "gwB", t0 + timedelta(seconds=2)) == []
    assert await connected("c0", "gwC", t0 - timedelta(seconds=5)) == []
    await disconnect(session, station_id, "c3", t0 + timedelta(seconds=3), gateway="gwB")
    assert await connected("c4", "gwA", t0 + timedelta(seconds=4)) == []


async def test_a_batch_of_disconnections_closes_only_current_connections(
    session: AsyncSession, station_id: str
) -> None:
    """Many stations leave in one batch: each goes offline if the closed connection was its
    current one; a station already on a newer connection stays online; repeats are harmless."""
    t0 = datetime.now(UTC)
    leaving, moved, unseen = f"{station_id}-a", f"{station_id}-b", f"{station_id}-c"
    await connect(session, leaving, "conn-a", t0)
    await connect(session, moved, "conn-b-old", t0)
    await connect(session, moved, "conn-b-new", t0 + timedelta(seconds=5))
    gone = t0 + timedelta(seconds=10)
    await presence.record_disconnections(
        session,
        [
            presence.Disconnection("conn-a", leaving, "gw", gone, t0 + timedelta(seconds=8)),
            presence.Disconnection("conn-a", leaving, "gw", gone, t0 + timedelta(seconds=9)),
            presence.Disconnection("conn-b-old", moved, "gw", gone),
            # A disconnection heard before its station was ever seen creates the station.
            presence.Disconnection("conn-c", unseen, "gw", gone),
        ],
    )
    await session.flush()

    rows = {
        s.id: s
        for s in await session.scalars(
            select(Station)
            .where(Station.id.in_([leaving, moved, unseen]))
            .execution_options(populate_existing=True)
        )
    }
    assert (rows[leaving].connected, rows[leaving].last_seen_at) == (
        False,
        t0 + timedelta(seconds=9),
    )
    assert (rows[moved].connected, rows[moved].connection_id) == (True, "conn-b-new")
    assert rows[unseen].connected is False
    closed = await session.scalar(
        select(func.count())
        .select_from(StationConnection)
        .where(
            StationConnection.id.in_(["conn-a", "conn-b-old", "conn-c"]),
            StationConnection.disconnected_at == gone,
        )
    )
    assert closed == 3


async def test_connected_then_disconnected_is_offline(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    connection = new_id()

    station = await connect(session, station_id, connection, t0)
    assert (station.connected, station.connection_id, station.connected_at) == (
        True,
        connection,
        t0,
    )
    assert station.last_seen_at == t0

    await disconnect(
        session,
        station_id,
        connection,
        t0 + timedelta(seconds=30),
        last_seen_at=t0 + timedelta(seconds=20),
    )

    station = await station_row(session, station_id)
    assert station.connected is False
    assert station.last_seen_at == t0 + timedelta(seconds=20)


async def test_the_old_connection_closing_leaves_the_new_one_connected(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    old, new = new_id(), new_id()
    await connect(session, station_id, old, t0)
    await connect(session, station_id, new, t0 + timedelta(seconds=5))

    await disconnect(session, station_id, old, t0 + timedelta(seconds=6))

    station = await station_row(session, station_id)
    assert (station.connected, station.connection_id) == (True, new)


async def test_an_older_connection_reported_late_does_not_take_over(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    old, new = new_id(), new_id()
    await connect(session, station_id, new, t0 + timedelta(seconds=5))

    await connect(session, station_id, old, t0)
    await disconnect(session, station_id, old, t0 + timedelta(seconds=6))

    station = await station_row(session, station_id)
    assert (station.connected, station.connection_id) == (True, new)


async def test_disconnected_processed_before_connected_leaves_the_station_offline(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    connection = new_id()

    await disconnect(session, station_id, connection, t0 + timedelta(seconds=10))
    station = await connect(session, station_id, connection, t0)

    assert station.connected is False
    station = await station_row(session, station_id)
    assert station.connected is False
    row = await session.get(StationConnection, connection, populate_existing=True)
    assert row is not None
    assert (row.connected_at, row.disconnected_at) == (t0, t0 + timedelta(seconds=10))


async def test_a_redelivered_connected_event_keeps_the_station_online(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    connection = new_id()
    await connect(session, station_id, connection, t0)

    station = await connect(session, station_id, connection, t0)

    assert (station.connected, station.connection_id) == (True, connection)
    assert await count(session, StationConnection, station_id) == 1


async def test_last_seen_only_moves_forward(session: AsyncSession, station_id: str) -> None:
    t0 = datetime.now(UTC)
    await presence.ensure_station(session, station_id=station_id, seen_at=t0)

    await presence.record_seen(session, {station_id: t0 + timedelta(seconds=10)})
    await session.flush()
    assert (await station_row(session, station_id)).last_seen_at == t0 + timedelta(seconds=10)

    await presence.record_seen(session, {station_id: t0 + timedelta(seconds=5)})
    await session.flush()
    assert (await station_row(session, station_id)).last_seen_at == t0 + timedelta(seconds=10)

    await presence.record_seen(session, {station_id: t0 + timedelta(seconds=25)})
    await session.flush()
    assert (await station_row(session, station_id)).last_seen_at == t0 + timedelta(seconds=25)


async def test_stations_of_a_silent_gateway_read_as_offline_until_it_beats_again(
    session: AsyncSession, station_id: str
) -> None:
    now = datetime.now(UTC)
    silent_gateway, live_gateway = f"gw-silent-{new_id()}", f"gw-live-{new_id()}"
    on_silent, on_live, nowhere = f"{station_id}-a", f"{station_id}-b", f"{station_id}-c"
    await connect(session, on_silent, new_id(), now - timedelta(minutes=20), silent_gateway)
    await connect(session, on_live, new_id(), now - timedelta(minutes=20), live_gateway)
    await presence.record_gateways_heard(session, {live_gateway: now})
    await session.flush()
    alive_since = now - timedelta(seconds=30)
    ours = [on_silent, on_live, nowhere]

    assert await presence.online_stations(session, ours, alive_since=alive_since) == {on_live}
    # The flags are untouched: the gateway may only be late.
    assert (await station_row(session, on_silent)).connected is True

    await presence.record_gateways_heard(session, {silent_gateway: now})
    await session.flush()
    online = await presence.online_stations(session, ours, alive_since=alive_since)
    assert online == {on_silent, on_live}


async def test_a_gateways_last_beat_only_moves_forward(
    session: AsyncSession, station_id: str
) -> None:
    now = datetime.now(UTC)
    gateway = f"gw-{new_id()}"
    await presence.record_gateways_heard(session, {gateway: now})
    await presence.record_gateways_heard(session, {gateway: now - timedelta(minutes=2)})
    await session.flush()
    row = await session.get(Gateway, gateway, populate_existing=True)
    assert row is not None
    assert row.last_beat_at == now

    await presence.record_gateways_heard(session, {gateway: now + timedelta(seconds=3)})
    row = await session.get(Gateway, gateway, populate_existing=True)
    assert row is not None
    assert row.last_beat_at == now + timedelta(seconds=3)


async def test_gateways_silent_for_good_are_forgotten_and_their_connections_closed(
    session: AsyncSession, station_id: str
) -> None:
    now = datetime.now(UTC)
    silent_gateway, live_gateway = f"gw-silent-{new_id()}", f"gw-live-{new_id()}"
    on_silent, on_live = f"{station_id}-a", f"{station_id}-b"
    silent_connection, live_connection = new_id(), new_id()
    await presence.record_gateways_heard(session, {silent_gateway: now - timedelta(minutes=10)})
    await connect(
        session, on_silent, silent_connection, now - timedelta(minutes=20), silent_gateway
    )
    await connect(session, on_live, live_connection, now - timedelta(minutes=20), live_gateway)
    await presence.record_gateways_heard(session, {live_gateway: now})
    silent_since = now - timedelta(minutes=5)

    dead = await presence.close_silent_gateways(session, silent_since=silent_since)
    await session.flush()

    assert silent_gateway in dead
    assert live_gateway not in dead
    assert (await station_row(session, on_silent)).connected is False
    live = await station_row(session, on_live)
    assert (live.connected, live.connection_id) == (True, live_connection)
    closed = await session.get(StationConnection, silent_connection, populate_existing=True)
    assert closed is not None
    assert closed.disconnected_at == silent_since
    still_open = await session.get(StationConnection, live_connection, populate_existing=True)
    assert still_open is not None
    assert still_open.disconnected_at is None
    assert await session.get(Gateway, silent_gateway, populate_existing=True) is None


# --- reads for the operator API -------------------------------------------------------------


async def test_list_stations_pages_by_id_with_the_total(
    session: AsyncSession, station_id: str
) -> None:
    ids = [f"{station_id}-{n}" for n in range(5)]
    for sid in reversed(ids):
        await presence.ensure_station(session, station_id=sid, seen_at=datetime.now(UTC))
    await session.flush()

    pages = []
    for offset in (0, 2, 4, 6):
        rows, total = await stations.list_stations(session, limit=2, offset=offset)
        assert total == 5
        pages.append([row.id for row in rows])

    assert pages == [ids[0:2], ids[2:4], ids[4:5], []]
    assert (await stations.get_station(session, station_id=ids[3])) is not None
    assert (await stations.get_station(session, station_id=f"{station_id}-x")) is None


async def test_connectors_are_ordered_by_station_evse_and_connector(
    session: AsyncSession, station_id: str
) -> None:
    first, second, other = f"{station_id}-a", f"{station_id}-b", f"{station_id}-c"
    t0 = datetime.now(UTC)
    for sid, evse_id, connector_id in [
        (second, 1, 1),
        (first, 2, 1),
        (first, 1, 2),
        (first, 1, 1),
        (other, 1, 1),
    ]:
        await record_status(
            session, sid, "Available", t0, evse_id=evse_id, connector_id=connector_id
        )

    rows = await stations.connectors_of(session, station_ids=[second, first])

    assert [(row.station_id, row.evse_id, row.connector_id) for row in rows] == [
        (first, 1, 1),
        (first, 1, 2),
        (first, 2, 1),
        (second, 1, 1),
    ]
    assert await stations.connectors_of(session, station_ids=[]) == []


async def test_events_are_listed_newest_first(session: AsyncSession, station_id: str) -> None:
    reporter = Reporter(session, station_id)
    await reporter.send(0, tbc=True, items=[event_item(1), event_item(2)])
    await reporter.send(1, items=[event_item(3)])
    await Reporter(session, f"{station_id}-other").send(0, items=[event_item(4)])

    rows, total = await stations.list_events(session, station_id=station_id, limit=10, offset=0)
    assert total == 3
    assert [row.event_id for row in rows] == [3, 2, 1]

    rows, total = await stations.list_events(session, station_id=station_id, limit=1, offset=1)
    assert total == 3
    assert [row.event_id for row in rows] == [2]


async def test_gaps_are_listed_newest_first(session: AsyncSession, station_id: str) -> None:
    reporter = Reporter(session, station_id)
    await reporter.send(3)
    await reporter.send(0, tbc=True)
    await reporter.send(2)
    await Reporter(session, f"{station_id}-other").send(5)

    rows, total = await stations.list_gaps(session, station_id=station_id, limit=10, offset=0)
    assert total == 2
    assert [(row.expected_seq_no, row.received_seq_no) for row in rows] == [(1, 2), (0, 3)]

    rows, total = await stations.list_gaps(session, station_id=station_id, limit=1, offset=0)
    assert total == 2
    assert [(row.expected_seq_no, row.received_seq_no) for row in rows] == [(1, 2)]


@pytest.mark.parametrize("limit", [1, 3])
async def test_a_test_sees_only_its_own_rows(
    session: AsyncSession, station_id: str, limit: int
) -> None:
    """Each test's writes are rolled back: the shared database looks empty to the next test."""
    _, total = await stations.list_stations(session, limit=limit, offset=0)
    assert total == 0
    await presence.ensure_station(session, station_id=station_id, seen_at=datetime.now(UTC))
    await session.flush()
    _, total = await stations.list_stations(session, limit=limit, offset=0)
    assert total == 1
