"""The FastAPI application of the commands service."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus.base import Bus
from csms.config import Settings
from csms_commands import stations


def create_app(settings: Settings, bus: Bus, sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI(
        title="CSMS commands API",
        version="0.1.0",
        description="Operate OCPP 2.0.1 charging stations: state, events, Reset, availability.",
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.sessions = sessions
    app.include_router(stations.router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
