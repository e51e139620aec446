"""BootNotification records and the boot decision (Accepted / Pending / Rejected)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import BootNotification, Command, Station, table_of


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
    report, in a few statements whatever the batch size.

    A redelivered or retransmitted boot (same connection and message id) gets the answer
    recorded the first time and changes nothing.
    """
    if not reports:
        return []
    stations = await _locked_stations(session, reports)
    decided = await _earlier_decisions(session, reports)
    decisions: list[BootDecision] = []
    completed_resets: list[dict[str, Any]] = []
    for report in reports:
        key = (report.station_id, report.connection_id, report.ocpp_message_id)
        if key in decided:
            decisions.append(decided[key])
            continue
        station = stations[report.station_id]
        decision = _decide(station, policy)
        decided[key] = decision
        decisions.append(decision)
        boot_data = _boot_data(report.payload)
        session.add(
            BootNotification(
                station_id=report.station_id,
                connection_id=report.connection_id,
                ocpp_message_id=report.ocpp_message_id,
                reason=report.payload["reason"],
                status=decision.status,
                interval=decision.interval,
                received_at=report.received_at,
                **boot_data,
            )
        )
        if station.last_boot_at is None or station.last_boot_at <= report.received_at:
            for field, value in boot_data.items():
                setattr(station, field, value)
            station.boot_status = decision.status
            station.last_boot_at = report.received_at
        if station.last_seen_at is None or station.last_seen_at < report.received_at:
            station.last_seen_at = report.received_at
        completed_resets.append({"sid": report.station_id, "at": report.received_at})
    await session.flush()
    if completed_resets:
        # The station booted again: the resets it acknowledged are done.
        table = table_of(Command)
        connection = await session.connection()
        await connection.execute(
            update(table)
            .where(
                table.c.station_id == bindparam("sid"),
                table.c.action == "Reset",
                table.c.open.is_(True),
                table.c.created_at <= bindparam("at"),
            )
            .values(open=False, closed_at=bindparam("at")),
            completed_resets,
        )
    return decisions


def _decide(station: Station, policy: BootPolicy) -> BootDecision:
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


async def _locked_stations(session: AsyncSession, reports: list[BootReport]) -> dict[str, Station]:
    first_seen = {report.station_id: report.received_at for report in reversed(reports)}
    await session.execute(
        insert(session, Station).on_conflict_do_nothing(index_elements=["id"]),
        [
            {"id": station_id, "connected": False, "created_at": at}
            for station_id, at in sorted(first_seen.items())
        ],
    )
    # Locked (in id order, so concurrent batches cannot deadlock) against a concurrent
    # command answer for the same station.
    rows = await session.scalars(
        select(Station)
        .where(Station.id.in_(sorted(first_seen)))
        .order_by(Station.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {station.id: station for station in rows}


async def _earlier_decisions(
    session: AsyncSession, reports: list[BootReport]
) -> dict[tuple[str, str, str], BootDecision]:
    keys = sorted({(r.station_id, r.connection_id, r.ocpp_message_id) for r in reports})
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


async def boot_after(session: AsyncSession, *, station_id: str, since: datetime) -> datetime | None:
    """When the station first booted after `since`, if it did."""
    result: datetime | None = await session.scalar(
        select(BootNotification.received_at)
        .where(BootNotification.station_id == station_id, BootNotification.received_at >= since)
        .order_by(BootNotification.received_at)
        .limit(1)
    )
    return result
