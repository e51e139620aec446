from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.processes import Deployment

_numbers = itertools.count(1)


@pytest.fixture
def station_id() -> str:
    """A station identity no other test uses."""
    return f"CS-{os.getpid()}-{next(_numbers)}"


@pytest.fixture
async def api(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.api_url, timeout=30) as client:
        yield client
