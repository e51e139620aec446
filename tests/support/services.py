"""The real RabbitMQ and Postgres the tests run against; missing services fail, never skip."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even beside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


POSTGRES_ADMIN_DSN = os.environ.get(
    "CSMS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
T = TypeVar("T")

AMQP_BASE_URL = os.environ.get("CSMS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class ServiceMissing(RuntimeError):
    pass


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def create_database(name: str) -> str:
    """Create an empty database; return its SQLAlchemy asyncpg URL."""
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceMissing(f"Postgres not reachable at {POSTGRES_ADMIN_DSN}: {exc}") from exc
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def create_vhost(name: str) -> str:
    """A RabbitMQ virtual host of its own keeps test runs apart; return its AMQP URL."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        raise ServiceMissing("rabbitmqctl not found: the tests need the local RabbitMQ")
    for arguments in (
        ["add_vhost", name],
        ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
    ):
        result = subprocess.run(
            [rabbitmqctl, "-q", *arguments], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise ServiceMissing(f"rabbitmqctl {arguments[0]} failed: {result.stderr.strip()}")
    return AMQP_BASE_URL.rstrip("/") + "/" + name


def close_connections(vhost: str) -> None:
    """Make the broker drop every client connection of `vhost`, as a broker restart would."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        raise ServiceMissing("rabbitmqctl not found: the tests need the local RabbitMQ")
    subprocess.run(
        [rabbitmqctl, "-q", "close_all_connections", "-p", vhost, "test: connection dropped"],
        capture_output=True,
        timeout=60,
        check=True,
    )


def delete_vhost(name: str) -> None:
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is not None:
        subprocess.run(
            [rabbitmqctl, "-q", "delete_vhost", name], capture_output=True, timeout=60, check=False
        )
