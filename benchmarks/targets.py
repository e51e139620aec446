"""The systems under test, each started as real processes and always stopped again.

- distributed: gateway(s), one events-worker and the API against a fresh RabbitMQ virtual
  host and a fresh, migrated Postgres database (dropped afterwards);
- standalone: `csms run` with SQLite in a temporary directory;
- baseline: `python -m benchmarks.baseline_csms PORT` (no database, no API).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from benchmarks.loadgen import REPO_ROOT
from tests.support import services
from tests.support.processes import Deployment, distributed, free_port, standalone

# Product defaults for everything the test settings shorten (pings every 5 s would cost
# 2000 pings/s at 10k stations, which no deployment is configured to do).
SETTINGS = {
    "CSMS_PING_INTERVAL": "30",
    "CSMS_PING_TIMEOUT": "30",
    "CSMS_SEEN_FLUSH_INTERVAL": "5",
    "CSMS_LOG_LEVEL": "INFO",
}

# Tables whose rows show that a station message was persisted.
CONNECTOR_STATUS = ("connector_status",)
INGEST_TABLES = ("status_notification", "event_data")

_PREFIX = re.compile(r"[A-Za-z0-9-]+")


class RowCounter(Protocol):
    async def count(self, tables: Sequence[str], prefix: str) -> int: ...

    async def close(self) -> None: ...


def _check_prefix(prefix: str) -> str:
    # Used in LIKE patterns: no wildcards, no quoting needed.
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"bad station id prefix {prefix!r}")
    return prefix


class PostgresCounter:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None

    async def open(self) -> None:
        self._connection = await asyncpg.connect(self._dsn, timeout=10)

    async def count(self, tables: Sequence[str], prefix: str) -> int:
        assert self._connection is not None
        pattern = _check_prefix(prefix) + "%"
        total = 0
        for table in tables:
            value = await self._connection.fetchval(
                f"SELECT count(*) FROM {table} WHERE station_id LIKE $1", pattern
            )
            total += int(value)
        return total

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class SqliteCounter:
    """Read-only: the CSMS process owns the file (WAL mode lets readers in beside it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, timeout=10, check_same_thread=False
            )
        return self._connection

    def _count(self, tables: Sequence[str], prefix: str) -> int:
        connection = self._open()
        pattern = _check_prefix(prefix) + "%"
        total = 0
        for table in tables:
            row = connection.execute(
                f"SELECT count(*) FROM {table} WHERE station_id LIKE ?", (pattern,)
            ).fetchone()
            total += int(row[0])
        return total

    async def count(self, tables: Sequence[str], prefix: str) -> int:
        return await asyncio.to_thread(self._count, tables, prefix)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Target:
    """A running system under test."""

    name: str
    ocpp_urls: list[str]
    api_url: str | None
    # The process whose memory the idle_memory scenario reads.
    memory_pid: int
    memory_process: str
    counter: RowCounter | None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Messages still queued in the broker (None: not observable, e.g. the in-process bus).
    backlog: Callable[[], Awaitable[int | None]] | None = None
    log_paths: list[Path] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    def dead_processes(self) -> list[str]:
        return [
            f"{name} exited with {popen.returncode}"
            for name, popen in self.processes.items()
            if popen.poll() is not None
        ]


@contextlib.asynccontextmanager
async def distributed_target(
    workdir: Path, gateways: int = 1, name: str = "distributed"
) -> AsyncIterator[Target]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    vhost = services.unique_name("csms-bench")
    database = services.unique_name("csms_bench")
    try:
        amqp_url = await asyncio.to_thread(services.create_vhost, vhost)
        database_url = await services.create_database(database)
        deployment = await asyncio.to_thread(
            distributed, workdir, amqp_url, database_url, gateways, 1, SETTINGS
        )
        try:
            await asyncio.to_thread(deployment.start)
            counter = PostgresCounter(
                database_url.replace("postgresql+asyncpg://", "postgresql://")
            )
            await counter.open()
            try:
                target = _deployment_target(name, deployment, "gateway-1", counter)
                target.backlog = lambda: asyncio.to_thread(queued_messages, vhost)
                yield target
            finally:
                await counter.close()
        finally:
            await asyncio.to_thread(deployment.stop)
    finally:
        with contextlib.suppress(Exception):
            await services.drop_database(database)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(services.delete_vhost, vhost)


@contextlib.asynccontextmanager
async def standalone_target(workdir: Path) -> AsyncIterator[Target]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    deployment = standalone(workdir, SETTINGS)
    try:
        await asyncio.to_thread(deployment.start)
        counter = SqliteCounter(workdir / "csms.db")
        try:
            yield _deployment_target("standalone", deployment, "csms-run", counter)
        finally:
            await counter.close()
    finally:
        await asyncio.to_thread(deployment.stop)


def queued_messages(vhost: str) -> int | None:
    """Ready plus unacknowledged messages in every queue of `vhost`."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return None
    done = subprocess.run(
        [rabbitmqctl, "-q", "list_queues", "-p", vhost, "messages", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        return None
    return sum(int(line) for line in done.stdout.split() if line.isdigit())


def _deployment_target(
    name: str, deployment: Deployment, memory_process: str, counter: RowCounter
) -> Target:
    processes = {p.name: p.popen for p in deployment.processes if p.popen is not None}
    return Target(
        name=name,
        ocpp_urls=list(deployment.ocpp_urls),
        api_url=deployment.api_url,
        memory_pid=processes[memory_process].pid,
        memory_process=memory_process,
        counter=counter,
        processes=processes,
        log_paths=[p.log_path for p in deployment.processes],
        description={
            "mode": deployment.mode,
            "processes": [p.name for p in deployment.processes],
            "settings": SETTINGS,
        },
    )


@contextlib.asynccontextmanager
async def baseline_target(workdir: Path) -> AsyncIterator[Target]:
    port = free_port()
    log_path = workdir / "baseline.log"
    popen = await asyncio.to_thread(_start_baseline, port, log_path)
    try:
        await _wait_listening(popen, port, log_path)
        yield Target(
            name="baseline",
            ocpp_urls=[f"ws://127.0.0.1:{port}/ocpp"],
            api_url=None,
            memory_pid=popen.pid,
            memory_process="baseline_csms",
            counter=None,
            processes={"baseline_csms": popen},
            log_paths=[log_path],
            description={"mode": "baseline", "package": "ocpp", "event_loop": "asyncio default"},
        )
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                await asyncio.to_thread(popen.wait, 10)
            except subprocess.TimeoutExpired:
                popen.kill()
                await asyncio.to_thread(popen.wait)


def _start_baseline(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baseline_csms", str(port)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


async def _wait_listening(
    popen: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"baseline exited: {await asyncio.to_thread(_tail, log_path)}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"baseline not listening on port {port} after {timeout} s")


_LEVEL = re.compile(r" (WARNING|ERROR|CRITICAL) ([\w.]+): (.*)")
_VARYING = re.compile(r"\b[\w-]*\d[\w-]*\b")


def _shape(text: str) -> str:
    # Station ids, numbers and ids vary from line to line; keep the shape of the message.
    return _VARYING.sub("#", text)[:200]


def log_findings(paths: Sequence[Path], samples: int = 8) -> dict[str, Any]:
    """Warnings, errors and tracebacks in the processes' logs: counts and a few examples
    (for a traceback: its last frame and the exception)."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    tracebacks: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            continue
        frame = ""
        in_traceback = False
        with path.open(errors="replace") as lines:
            for raw in lines:
                line = raw.rstrip("\n")
                if line.startswith("Traceback"):
                    in_traceback, frame = True, ""
                    continue
                if in_traceback:
                    if line.startswith("  File "):
                        frame = line.strip()
                    elif line and not line.startswith(" "):
                        in_traceback = False
                        tracebacks[f"{path.stem}: {_shape(line)} <- {frame}"] += 1
                    continue
                match = _LEVEL.search(line)
                if match:
                    levels[match.group(1)] += 1
                    text = (
                        f"{path.stem}: {match.group(1)} {match.group(2)}: {_shape(match.group(3))}"
                    )
                    messages[text] += 1
    return {
        "levels": dict(levels),
        "tracebacks": sum(tracebacks.values()),
        "top": [f"{count}x {message}" for message, count in messages.most_common(samples)],
        "top_tracebacks": [
            f"{count}x {message}" for message, count in tracebacks.most_common(samples)
        ],
    }
