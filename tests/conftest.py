"""Shared fixtures: real services, real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import services
from tests.support.processes import Deployment, distributed, standalone


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this test run."""
    name = services.unique_name("csms_test")
    url = services.run_sync(services.create_database(name))
    yield url
    services.run_sync(services.drop_database(name))


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test run's own."""
    name = services.unique_name("csms-test")
    url = services.create_vhost(name)
    yield url
    services.delete_vhost(name)


@pytest.fixture(scope="session", params=["standalone", "distributed"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The CSMS as real processes: `csms run`, or two gateways, a worker and the API."""
    workdir: Path = tmp_path_factory.mktemp(request.param)
    if request.param == "standalone":
        running = standalone(workdir)
    else:
        running = distributed(
            workdir, request.getfixturevalue("amqp_url"), request.getfixturevalue("postgres_url")
        )
    try:
        running.start()
    except Exception:
        running.stop()
        raise
    yield running
    running.stop()
