"""The composition root: `csms run | gateway | worker | api | migrate | stations | tokens |
simulate | probe`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from csms.config import Settings
from csms.logging import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csms", description="OCPP 2.0.1 Charging Station Management System"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="the whole CSMS in one process: in-process bus and SQLite unless configured"
    )
    run.add_argument("--ocpp-port", type=int, help="OCPP WebSocket port (default 9000)")
    run.add_argument("--api-port", type=int, help="HTTP API port (default 8000)")
    run.add_argument("--host", help="listen address (default 0.0.0.0)")

    gateway = commands.add_parser("gateway", help="the OCPP WebSocket gateway (needs RabbitMQ)")
    gateway.add_argument("--port", type=int, help="OCPP WebSocket port (default 9000)")
    gateway.add_argument("--host", help="listen address (default 0.0.0.0)")
    gateway.add_argument("--instance-id", help="unique name of this gateway (default: random)")

    worker = commands.add_parser("worker", help="the events-worker (needs RabbitMQ and a database)")
    worker.add_argument("--health-port", type=int, help="serve GET /health on this port")

    api = commands.add_parser("api", help="the commands HTTP API (needs RabbitMQ and a database)")
    api.add_argument("--port", type=int, help="HTTP port (default 8000)")
    api.add_argument("--host", help="listen address (default 0.0.0.0)")

    commands.add_parser("migrate", help="bring the database schema to the newest version")

    from csms import admin
    from csms.simulator import cli as simulator_cli

    admin.add_arguments(commands)
    simulate = commands.add_parser(
        "simulate", help="run N simulated OCPP 2.0.1 stations against a CSMS (load testing)"
    )
    simulator_cli.add_arguments(simulate)

    probe = commands.add_parser("probe", help="exit 0 when GET URL answers 200 (health checks)")
    probe.add_argument("url")
    probe.add_argument("--timeout", type=float, default=3.0)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "probe":
        from csms.probe import probe

        sys.exit(0 if probe(args.url, args.timeout) else 1)
    if args.command == "simulate":
        from csms.simulator import cli as simulator_cli

        sys.exit(simulator_cli.run(args))
    if args.command in ("stations", "tokens"):
        from csms import admin

        sys.exit(asyncio.run(admin.run(args, settings)))
    if args.command == "migrate":
        from csms.db.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        return
    settings = settings.model_copy(update=_overrides(args))
    if args.command == "run":
        # Standalone start-up brings its own schema up to date.
        from csms.db.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
    from csms.runtime import run_process

    _run(run_process(args.command, settings, health_port=getattr(args, "health_port", None)))


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings given as flags; flags win over environment variables."""
    flags: dict[str, object] = {"instance_id": getattr(args, "instance_id", None)}
    if args.command == "run":
        flags |= {"ocpp_port": args.ocpp_port, "api_port": args.api_port}
        flags |= {"ocpp_host": args.host, "api_host": args.host}
    elif args.command == "gateway":
        flags |= {"ocpp_port": args.port, "ocpp_host": args.host}
    elif args.command == "api":
        flags |= {"api_port": args.port, "api_host": args.host}
    return {key: value for key, value in flags.items() if value is not None}


def _run(coroutine: object) -> None:
    try:
        import uvloop

        uvloop.run(coroutine)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
