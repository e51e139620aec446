"""The FastAPI application of the commands service."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus.base import Bus
from csms.config import Settings
from csms.db.command_journal import CommandJournal
from csms.ocpp.actions import CsmsAction
from csms.ocpp.validation import compile_validators
from csms_commands import station_commands, station_registry, stations
from csms_commands.auth import TokenChecker
from csms_commands.plain_commands import CommandApi


def create_app(
    settings: Settings,
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    journal: CommandJournal,
) -> FastAPI:
    app = CommandApi(
        title="CSMS commands API",
        version="0.1.0",
        description="Operate OCPP 2.0.1 charging stations: state, events, Reset, availability.",
    )
    # Before the first command: the schemas of what operators send.
    compile_validators(requests=CsmsAction)
    app.state.settings = settings
    app.state.bus = bus
    app.state.sessions = sessions
    app.state.journal = journal
    app.state.tokens = TokenChecker(settings, sessions)
    # Routes are matched in order: the commands, the hot path, first. No path of one router
    # matches another's.
    app.include_commands(station_commands.router)
    app.include_router(stations.router)
    app.include_router(station_registry.router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
