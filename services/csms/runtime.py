"""Process start-up: wires bus, database and apps, runs until SIGINT/SIGTERM.

This and `cli` are the composition root, the only modules that import more than one app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from csms.bus.amqp import AmqpBus
from csms.bus.base import Bus
from csms.bus.memory import MemoryBus
from csms.config import Settings
from csms.db.command_journal import CommandJournal
from csms.db.engine import create_engine, create_session_factory
from csms.health import serve_health
from csms.heap import tune_garbage_collector
from csms_commands.app import create_app
from csms_events_worker.consumer import EventsWorker
from csms_gateway.app import Gateway

log = logging.getLogger(__name__)

# Seconds a stopping process spends closing sockets and flushing before it gives up.
_STOP_TIMEOUT = 15.0


def make_bus(settings: Settings) -> Bus:
    if settings.amqp_url is None:
        return MemoryBus(max_redeliveries=settings.max_redeliveries)
    return AmqpBus(
        settings.amqp_url,
        prefetch=settings.consumer_prefetch,
        max_redeliveries=settings.max_redeliveries,
        publish_timeout=settings.publish_timeout,
    )


async def run_process(kind: str, settings: Settings, health_port: int | None = None) -> None:
    """Run `run` (everything), `gateway`, `worker` or `api` until asked to stop."""
    if kind != "run" and settings.amqp_url is None:
        raise SystemExit(f"csms {kind} needs CSMS_AMQP_URL; `csms run` needs no infrastructure")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    bus = make_bus(settings)
    await bus.connect()
    engine = (
        create_engine(settings.database_url, pool_size=settings.database_pool_size)
        if kind in ("run", "worker", "api")
        else None
    )
    sessions = create_session_factory(engine) if engine is not None else None
    worker = (
        EventsWorker(bus, sessions, settings) if sessions and kind in ("run", "worker") else None
    )
    gateway = Gateway(bus, settings) if kind in ("run", "gateway") else None
    journal: CommandJournal | None = None
    api: uvicorn.Server | None = None
    api_task: asyncio.Task[None] | None = None
    health: asyncio.Server | None = None
    try:
        if worker is not None:
            await worker.start()
        if gateway is not None:
            await gateway.start()
        if sessions is not None and kind in ("run", "api"):
            journal = CommandJournal(sessions)
            await journal.start()
            app = create_app(settings, bus, sessions, journal)
            config = uvicorn.Config(
                app,
                host=settings.api_host,
                port=settings.api_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
            api = uvicorn.Server(config)
            api_task = asyncio.create_task(api.serve())
        if health_port is not None:
            health = await serve_health("0.0.0.0", health_port, lambda: True)
        tune_garbage_collector()
        log.info("csms %s started", kind)
        if api_task is not None:
            stop_wait = asyncio.create_task(stop.wait())
            await asyncio.wait({api_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        else:
            await stop.wait()
    finally:
        log.info("csms %s stopping", kind)
        if api is not None and api_task is not None:
            api.should_exit = True
            with contextlib.suppress(Exception):
                await api_task
        if journal is not None:
            await journal.close()
        # Bounded, so that an unreachable broker cannot keep a stopping process alive.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT):
                if gateway is not None:
                    await gateway.stop()
                if worker is not None:
                    await worker.stop()
        if health is not None:
            health.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT):
                await bus.close()
        if engine is not None:
            await engine.dispose()
