"""BootNotification records and the boot decision (Accepted / Pending / Rejected)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from csms.db.dialect import insert
from csms.db.models import BootNotification, Command, Station, table_of
from csms.db.presence import latest_times, touch_last_seen


@dataclass(frozen=True, slots=True)
class BootPolicy:
    """How boots are answered where the operator has not decided for the station."""

    unknown_station_status: str
    heartbeat_interval: int
    retry_interval: int


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: str
    interval: int


@dataclass(frozen=True, slots=True)
class BootReport:
    """One BootNotificationRequest as received."""

    station_id: str
    connection_id: str
    ocpp_message_id: str
    payload: dict[str, Any]
    received_at: datetime


async def record_boot(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    ocpp_message_id: str,
    payload: dict[str, Any],
    received_at: datetime,
    policy: BootPolicy,
) -> BootDecision:
    """Store a boot, decide its answer, and close the resets it completes (see record_boots)."""
    report = BootReport(station_id, connection_id, ocpp_message_id, payload, received_at)
    return (await record_boots(session, [report], policy))[0]


async def record_boots(
    session: AsyncSession, reports: list[BootReport], policy: BootPolicy
) -> list[BootDecision]:
    """Store boots, decide each answer, and close the resets they complete; one decision per
    report, in a few statements whatever the batch size (Core executemany of cached
    statements: ORM objects per boot cost more than the database's own work).

    A redelivered or retransmitted boot (same connection and message id) gets the answer
    recorded the first time and changes nothing.
    """
    if not reports:
        return []
    stations = await _locked_stations(session, reports)
    writes = plan_boots(reports, stations, await _earlier_decisions(session, reports), policy)
    if not writes.boots:
        return writes.decisions
    connection = await session.connection()
    await connection.execute(table_of(BootNotification).insert(), writes.boots)
    await connection.execute(
        _UPDATE_STATION,
        [
            {"sid": boot["station_id"], "boot_status": boot["status"], "at": boot["received_at"]}
            | {field: boot[field] for field in BOOT_FIELDS}
            for boot in newest_boots(writes.boots)
        ],
    )
    await touch_last_seen(session, boots_seen(writes.boots))
    # The station booted again: the resets it acknowledged are done.
    await connection.execute(
        _CLOSE_RESETS, [{"sid": b["station_id"], "at": b["received_at"]} for b in writes.boots]
    )
    return writes.decisions


# A boot's natural key: station, connection, OCPP message id.
BootKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Registration:
    """What the boot decision reads of a station (its row, locked)."""

    registration_status: str | None
    heartbeat_interval: int | None


@dataclass(frozen=True, slots=True)
class BootWrites:
    """What a batch of boots stores: one decision per report, and boot_notification's rows for
    the boots not stored before, in batch order."""

    decisions: list[BootDecision]
    boots: list[dict[str, Any]]


def first_contacts(reports: list[BootReport]) -> list[tuple[str, datetime]]:
    """The batch's stations in id order (the order they are locked in, so that concurrent
    batches cannot deadlock), each with its first boot's time: its row's creation if new."""
    first = {report.station_id: report.received_at for report in reversed(reports)}
    return sorted(first.items())


def boot_keys(reports: list[BootReport]) -> list[BootKey]:
    return sorted({(r.station_id, r.connection_id, r.ocpp_message_id) for r in reports})


def plan_boots(
    reports: list[BootReport],
    stations: dict[str, Registration],
    decided: dict[BootKey, BootDecision],
    policy: BootPolicy,
) -> BootWrites:
    """The writes of a batch, given its stations' registrations and the decisions already
    recorded for its keys; a key repeated in the batch is decided once."""
    decided = dict(decided)
    decisions: list[BootDecision] = []
    boots: list[dict[str, Any]] = []
    for report in reports:
        key = (report.station_id, report.connection_id, report.ocpp_message_id)
        if key in decided:
            decisions.append(decided[key])
            continue
        decision = _decide(stations[report.station_id], policy)
        decided[key] = decision
        decisions.append(decision)
        boots.append(
            {
                "station_id": report.station_id,
                "connection_id": report.connection_id,
                "ocpp_message_id": report.ocpp_message_id,
                "reason": report.payload["reason"],
                "status": decision.status,
                "interval": decision.interval,
                "received_at": report.received_at,
                **_boot_data(report.payload),
            }
        )
    return BootWrites(decisions, boots)


def newest_boots(boots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each station's newest boot (the last of equally new ones), in station order: its data
    goes on the station unless a newer boot is stored already."""
    newest: dict[str, dict[str, Any]] = {}
    for boot in boots:
        station_id = boot["station_id"]
        if station_id not in newest or newest[station_id]["received_at"] <= boot["received_at"]:
            newest[station_id] = boot
    return [newest[station_id] for station_id in sorted(newest)]


def boots_seen(boots: list[dict[str, Any]]) -> dict[str, datetime]:
    """When each booted station was last seen, by its boots."""
    return latest_times((boot["station_id"], boot["received_at"]) for boot in boots)


# What a boot tells of the station, stored with the boot and on the station.
BOOT_FIELDS = (
    "vendor_name",
    "model",
    "serial_number",
    "firmware_version",
    "modem_iccid",
    "modem_imsi",
)


def _update_station() -> Any:
    table = table_of(Station)
    return (
        update(table)
        .where(
            table.c.id == bindparam("sid"),
            or_(table.c.last_boot_at.is_(None), table.c.last_boot_at <= bindparam("at")),
        )
        .values(
            boot_status=bindparam("boot_status"),
            last_boot_at=bindparam("at"),
            **{field: bindparam(field) for field in BOOT_FIELDS},
        )
    )


def _close_resets() -> Any:
    table = table_of(Command)
    return (
        update(table)
        .where(
            table.c.station_id == bindparam("sid"),
            table.c.action == "Reset",
            table.c.open.is_(True),
            table.c.created_at <= bindparam("at"),
        )
        .values(open=False, closed_at=bindparam("at"))
    )


_UPDATE_STATION = _update_station()
_CLOSE_RESETS = _close_resets()


def _decide(station: Registration, policy: BootPolicy) -> BootDecision:
    status = station.registration_status or policy.unknown_station_status
    if status == "Accepted":
        return BootDecision(status, station.heartbeat_interval or policy.heartbeat_interval)
    return BootDecision(status, policy.retry_interval)


def _boot_data(payload: dict[str, Any]) -> dict[str, Any]:
    charging_station: dict[str, Any] = payload["chargingStation"]
    modem: dict[str, Any] = charging_station.get("modem", {})
    return {
        "vendor_name": charging_station["vendorName"],
        "model": charging_station["model"],
        "serial_number": charging_station.get("serialNumber"),
        "firmware_version": charging_station.get("firmwareVersion"),
        "modem_iccid": modem.get("iccid"),
        "modem_imsi": modem.get("imsi"),
    }


async def _locked_stations(
    session: AsyncSession, reports: list[BootReport]
) -> dict[str, Registration]:
    first_seen = first_contacts(reports)
    await session.execute(
        insert(session, Station).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": station_id, "connected": False, "created_at": at} for station_id, at in first_seen],
    )
    table = table_of(Station)
    connection = await session.connection()
    # Locked (in id order, so concurrent batches cannot deadlock) against a concurrent
    # command answer for the same station.
    rows = await connection.execute(
        select(table.c.id, table.c.registration_status, table.c.heartbeat_interval)
        .where(table.c.id.in_([station_id for station_id, _ in first_seen]))
        .order_by(table.c.id)
        .with_for_update()
    )
    return {row[0]: Registration(row[1], row[2]) for row in rows}


async def _earlier_decisions(
    session: AsyncSession, reports: list[BootReport]
) -> dict[BootKey, BootDecision]:
    keys = boot_keys(reports)
    rows = await session.execute(
        select(
            BootNotification.station_id,
            BootNotification.connection_id,
            BootNotification.ocpp_message_id,
            BootNotification.status,
            BootNotification.interval,
        ).where(
            tuple_(
                BootNotification.station_id,
                BootNotification.connection_id,
                BootNotification.ocpp_message_id,
            ).in_(keys)
        )
    )
    return {(row[0], row[1], row[2]): BootDecision(row[3], row[4]) for row in rows}


async def boot_after(
    connection: AsyncConnection, *, station_id: str, since: datetime
) -> datetime | None:
    """When the station first booted after `since`, if it did."""
    result: datetime | None = await connection.scalar(
        select(BootNotification.received_at)
        .where(BootNotification.station_id == station_id, BootNotification.received_at >= since)
        .order_by(BootNotification.received_at)
        .limit(1)
    )
    return result
