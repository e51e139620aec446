"""`csms simulate`: the command-line face of the simulator (flags, progress line, summary)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TextIO

from csms.heap import tune_garbage_collector
from csms.simulator.config import SimulationConfig
from csms.simulator.runner import run_simulation

DEFAULT_URL = "ws://127.0.0.1:9000/ocpp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"OCPP base URL; stations connect to URL/<id>; comma-separate several gateways "
        f"(default {DEFAULT_URL})",
    )
    parser.add_argument("-n", "--stations", type=int, default=1, help="stations (default 1)")
    parser.add_argument("--prefix", default="SIM", help="station id prefix (default SIM)")
    parser.add_argument("--evses", type=int, default=2, help="EVSEs per station (default 2)")
    parser.add_argument("--connectors", type=int, default=1, help="connectors per EVSE (default 1)")
    parser.add_argument(
        "--connect-rate",
        type=float,
        default=500.0,
        help="new connections per second (default 500)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds to run after all stations booted; 0: stop after boot and statuses",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="StatusNotification/NotifyEvent messages per second per station (default 0)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        help="heartbeat period in seconds (default: the interval of the Accepted boot)",
    )
    parser.add_argument("--password", help="send HTTP Basic auth <id>:PASSWORD")
    parser.add_argument(
        "--source-addresses",
        type=source_addresses,
        default=(),
        help="local addresses to connect from, round-robin: a comma list, or a count N "
        "meaning 127.0.0.1..127.0.0.N (more than ~28k sockets need several)",
    )
    parser.add_argument(
        "--call-timeout", type=float, default=30.0, help="seconds to wait for an answer"
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=60.0,
        help="seconds after the last start to wait for every station to boot (default 60)",
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="no permessage-deflate (less CPU)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def source_addresses(value: str) -> tuple[str, ...]:
    """`4` -> 127.0.0.1..127.0.0.4; `127.0.0.2,127.0.0.3` -> those two."""
    value = value.strip()
    if value.isdigit():
        count = int(value)
        if not 1 <= count <= 254:
            raise argparse.ArgumentTypeError("a count of source addresses must be 1..254")
        return tuple(f"127.0.0.{number}" for number in range(1, count + 1))
    addresses = tuple(part.strip() for part in value.split(",") if part.strip())
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IP address: {address!r}") from None
    return addresses


def config_from(args: argparse.Namespace) -> SimulationConfig:
    return SimulationConfig(
        url=args.url,
        stations=args.stations,
        id_prefix=args.prefix,
        evses=args.evses,
        connectors=args.connectors,
        connect_rate=args.connect_rate,
        duration=args.duration,
        message_rate=args.rate,
        heartbeat_interval=args.heartbeat_interval,
        password=args.password,
        source_addresses=args.source_addresses,
        call_timeout=args.call_timeout,
        boot_timeout=args.boot_timeout,
        compression=not args.no_compression,
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulation (on uvloop when installed); 0 when every station booted Accepted."""
    try:
        config = config_from(args)
    except ValueError as error:
        print(f"csms simulate: {error}", file=sys.stderr)
        return 2
    progress = ProgressLine(sys.stderr)
    # Measured latencies must not carry the simulator's own collector pauses.
    tune_garbage_collector()
    summary = _run_loop(_simulate(config, progress))
    progress.finish()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary["all_booted"] else 1


async def _simulate(config: SimulationConfig, progress: ProgressLine) -> dict[str, Any]:
    """Ctrl-C or SIGTERM stop the run cleanly: sockets are closed and the summary printed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(number, stop.set)
    return await run_simulation(config, progress=progress, stop=stop)


def _run_loop(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    result: dict[str, Any] = uvloop.run(coroutine)
    return result


class ProgressLine:
    """One line a second on stderr: rewritten in place on a terminal, appended otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._written = False

    def __call__(self, snapshot: dict[str, Any]) -> None:
        errors = snapshot["call_errors"] + snapshot["connect_failures"] + snapshot["disconnects"]
        line = (
            f"{snapshot['elapsed_s']:7.1f}s  connected {snapshot['connected']}"
            f"/{snapshot['stations']}  booted {snapshot['booted']}  "
            f"msgs/s {snapshot['sent_per_s']}  errors {errors}  timeouts {snapshot['timeouts']}"
        )
        self._stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self._stream.flush()
        self._written = True

    def finish(self) -> None:
        if self._tty and self._written:
            self._stream.write("\n")
            self._stream.flush()


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as an aligned two-column table; nested dicts become indented rows."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows.append((key, "" if value else "-"))
            for name, inner in value.items():
                text = (
                    "  ".join(f"{k} {v}" for k, v in inner.items())
                    if isinstance(inner, dict)
                    else str(inner)
                )
                rows.append((f"  {name}", text))
        else:
            rows.append((key, "-" if value is None else str(value)))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}".rstrip() for key, value in rows)
