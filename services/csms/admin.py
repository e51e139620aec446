"""`csms stations …` and `csms tokens …`: the registry and API tokens from the command line.

They work on the database directly; with CSMS_AMQP_URL set, registry changes are also announced
to the gateways (otherwise gateways pick them up within their credentials cache TTL).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from csms import registry
from csms.bus.amqp import AmqpBus
from csms.config import Settings
from csms.db import registry as records
from csms.db import stations as station_records
from csms.db.engine import create_engine, create_session_factory
from csms.db.registry import AlreadyRegistered, ConnectorLayout
from csms.ocpp.identity import BadIdentity
from csms.security.tokens import Scope, generate_token, token_hash
from csms.timeutil import format_datetime, utcnow


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stations = commands.add_parser("stations", help="register and manage stations")
    actions = stations.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a station")
    add.add_argument("station_id")
    _registration_flags(add)
    add.add_argument(
        "--connector",
        action="append",
        default=[],
        metavar="EVSE:CONNECTOR[:TYPE]",
        help="a connector of the layout, e.g. 1:1:cType2 (repeat for each)",
    )
    actions.add_parser("list", help="list stations")
    change = actions.add_parser("set", help="change a station's registration")
    change.add_argument("station_id")
    _registration_flags(change)
    remove = actions.add_parser("remove", help="remove a station's registration")
    remove.add_argument("station_id")

    tokens = commands.add_parser("tokens", help="issue and revoke operator API tokens")
    token_actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = token_actions.add_parser("add", help="issue a token (shown once)")
    issue.add_argument("name")
    issue.add_argument("--read-only", action="store_true", help="may only read, not command")
    token_actions.add_parser("list", help="list tokens (never their values)")
    revoke = token_actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")


def _registration_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", type=int, choices=range(4), help="security profile 0-3")
    parser.add_argument("--password", help="Basic-auth password, 16-40 characters")
    parser.add_argument("--generate-password", action="store_true")
    parser.add_argument("--status", choices=registry.REGISTRATION_STATUSES)
    parser.add_argument("--heartbeat-interval", type=int)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one `stations` or `tokens` action; returns the exit code."""
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    handlers: dict[tuple[str, str], Callable[[AsyncSession], Awaitable[int]]] = {
        ("stations", "add"): lambda s: _add_station(s, args, settings),
        ("stations", "list"): _list_stations,
        ("stations", "set"): lambda s: _set_station(s, args, settings),
        ("stations", "remove"): lambda s: _remove_station(s, args, settings),
        ("tokens", "add"): lambda s: _add_token(s, args),
        ("tokens", "list"): _list_tokens,
        ("tokens", "revoke"): lambda s: _revoke_token(s, args),
    }
    try:
        async with sessions() as session, session.begin():
            return await handlers[(args.command, args.action)](session)
    except (AlreadyRegistered, BadIdentity, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    finally:
        await engine.dispose()


async def _add_station(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    registration = await registry.register(
        session,
        station_id=args.station_id,
        security_profile=args.profile if args.profile is not None else settings.security_profile,
        password=args.password,
        generate=args.generate_password,
        registration_status=args.status or "Accepted",
        heartbeat_interval=args.heartbeat_interval,
        layout=[_connector(text) for text in args.connector],
    )
    await session.flush()
    print(f"registered {args.station_id} (profile {registration.station.security_profile})")
    if registration.generated_password:
        print(f"password (shown once): {registration.generated_password}")
    await _announce(settings, args.station_id, registration.station.registration_status, False)
    return 0


async def _set_station(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    station = await station_records.get_station(session, station_id=args.station_id)
    if station is None:
        print(f"error: station {args.station_id} never seen")
        return 1
    registration = await registry.update(
        session,
        station,
        registration_status=args.status,
        security_profile=args.profile,
        password=args.password,
        generate=args.generate_password,
        heartbeat_interval=args.heartbeat_interval,
    )
    await session.flush()
    print(f"updated {args.station_id}: {station.registration_status}")
    if registration.generated_password:
        print(f"password (shown once): {registration.generated_password}")
    await _announce(settings, args.station_id, station.registration_status, False)
    return 0


async def _remove_station(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    if not await records.remove_station(session, station_id=args.station_id):
        print(f"error: station {args.station_id} never seen")
        return 1
    print(f"removed {args.station_id}")
    await _announce(settings, args.station_id, None, True)
    return 0


async def _list_stations(session: AsyncSession) -> int:
    stations, _ = await station_records.list_stations(session, limit=100_000, offset=0)
    print(f"{'id':<48} {'registration':<12} {'boot':<9} {'profile':<7} connected")
    for s in stations:
        print(
            f"{s.id:<48} {s.registration_status or '-':<12} {s.boot_status or '-':<9} "
            f"{s.security_profile:<7} {'yes' if s.connected else 'no'}"
        )
    return 0


async def _add_token(session: AsyncSession, args: argparse.Namespace) -> int:
    token = generate_token()
    scope = Scope.READ if args.read_only else Scope.WRITE
    row = await records.add_api_token(
        session,
        token_id=str(uuid.uuid4()),
        name=args.name,
        token_hash=token_hash(token),
        scope=scope,
        at=utcnow(),
    )
    print(f"token {row.id} ({scope}) for {args.name}; shown once:")
    print(token)
    return 0


async def _list_tokens(session: AsyncSession) -> int:
    for token in await records.list_api_tokens(session):
        revoked = f"revoked {format_datetime(token.revoked_at)}" if token.revoked_at else "active"
        print(f"{token.id}  {token.scope:<5}  {token.name:<30}  {revoked}")
    return 0


async def _revoke_token(session: AsyncSession, args: argparse.Namespace) -> int:
    if not await records.revoke_api_token(session, token_id=args.token_id, at=utcnow()):
        print(f"error: no active token {args.token_id}")
        return 1
    print(f"revoked {args.token_id}")
    return 0


def _connector(text: str) -> ConnectorLayout:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"connector {text!r} is not EVSE:CONNECTOR[:TYPE]")
    return ConnectorLayout(int(parts[0]), int(parts[1]), parts[2] if len(parts) == 3 else None)


async def _announce(settings: Settings, station_id: str, status: str | None, removed: bool) -> None:
    if settings.amqp_url is None:
        return
    bus = AmqpBus(settings.amqp_url)
    await bus.connect()
    try:
        await registry.announce(bus, station_id=station_id, status=status, removed=removed)
    finally:
        await bus.close()
