"""`csms simulate` against the real CSMS: a small fleet boots and talks, answers a Reset."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from csms.simulator import SimulationConfig, run_simulation
from csms.simulator.cli import add_arguments, run
from tests.support.polling import eventually
from tests.support.processes import Deployment

pytestmark = pytest.mark.e2e

_runs = itertools.count(1)


def prefix() -> str:
    """A station id prefix no other test (or test run) uses."""
    return f"SIM{os.getpid()}-{next(_runs)}-"


def fleet(deployment: Deployment, **settings: Any) -> SimulationConfig:
    # Every gateway of the deployment gets its share of stations.
    return SimulationConfig(url=",".join(deployment.ocpp_urls), id_prefix=prefix(), **settings)


@asynccontextmanager
async def running(config: SimulationConfig) -> AsyncIterator[asyncio.Future[dict[str, Any]]]:
    """The simulation in the background; stopped (and its summary ready) on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_simulation(config, stop=stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.shield(task), 30)


async def station(api: httpx.AsyncClient, station_id: str) -> dict[str, Any]:
    response = await api.get(f"/stations/{station_id}")
    return response.json() if response.status_code == 200 else {}


def booted(body: dict[str, Any]) -> bool:
    return bool(body) and body["connected"] and body["bootStatus"] == "Accepted"


async def test_a_fleet_boots_and_sends_traffic(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    config = fleet(deployment, stations=20, duration=2, message_rate=2)
    progress: list[dict[str, Any]] = []
    summary = await run_simulation(config, progress=progress.append)

    assert summary["all_booted"], summary
    assert (summary["booted"], summary["ready"], summary["accepted"]) == (20, 20, 20)
    assert summary["connected_at_stop"] == 20
    for counter in ("call_errors", "timeouts", "connect_failures", "disconnects", "pending"):
        assert summary[counter] == 0, summary
    assert summary["errors"] == {}
    # 20 boots, 40 initial statuses, and about 2 messages/s/station for 2 s.
    assert summary["sent"] >= 60 + 40, summary
    # Stopping may leave one CALL per station unanswered; every other one got its result.
    assert summary["in_flight_at_stop"] <= 20
    assert summary["results"] + summary["in_flight_at_stop"] == summary["sent"]
    latency = summary["latency_ms"]
    assert latency["count"] == summary["results"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert {"BootNotification", "StatusNotification", "NotifyEvent"} <= set(
        summary["latency_by_action_ms"]
    )
    assert summary["time_to_all_booted_s"] is not None
    assert progress
    assert progress[-1]["booted"] == 20
    assert "sent_per_s" in progress[-1]

    # Workers store what the gateways acknowledged; in distributed mode that takes a moment.
    first = await eventually(
        lambda: station(api, config.station_id(1)), lambda body: len(body["evses"]) == 2
    )
    assert first["bootStatus"] == "Accepted"
    assert (first["vendorName"], first["model"]) == ("CSMS-Simulator", "SimStation")
    assert [(evse["id"], len(evse["connectors"])) for evse in first["evses"]] == [(1, 1), (2, 1)]
    for evse in first["evses"]:
        assert evse["connectors"][0]["status"] in {"Available", "Occupied"}

    async def stored_events() -> int:
        pages = [
            (await api.get(f"/stations/{config.station_id(number)}/events")).json()
            for number in range(1, 21)
        ]
        return sum(page["total"] for page in pages)

    # Every acknowledged NotifyEvent (one eventData item each) is stored.
    acknowledged = summary["latency_by_action_ms"]["NotifyEvent"]["count"]
    await eventually(stored_events, lambda total: total >= acknowledged)
    # Stopping closed every socket: the CSMS sees the stations go.
    await eventually(
        lambda: station(api, config.station_id(20)), lambda body: body["connected"] is False
    )


async def test_a_simulated_station_answers_reset_and_boots_again(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    config = fleet(deployment, stations=2, duration=60)
    station_id = config.station_id(1)
    async with running(config) as simulation:
        before = await eventually(
            lambda: station(api, station_id),
            lambda body: booted(body) and len(body["evses"]) == 2,
        )
        assert all(evse["connectors"] for evse in before["evses"])

        response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Accepted"}

        first_boot = datetime.fromisoformat(before["lastBootAt"])

        def booted_again(body: dict[str, Any]) -> bool:
            last_boot = body.get("lastBootAt")
            return isinstance(last_boot, str) and datetime.fromisoformat(last_boot) > first_boot

        after = await eventually(lambda: station(api, station_id), booted_again, timeout=10)
        assert after["bootStatus"] == "Accepted"
        await eventually(lambda: station(api, station_id), booted)
        commands = (await api.get(f"/stations/{station_id}/commands")).json()["items"]
        assert (commands[0]["action"], commands[0]["open"]) == ("Reset", False)
    summary = simulation.result()
    assert summary["all_booted"], summary
    assert (summary["resets"], summary["reconnects"], summary["accepted"]) == (1, 1, 3)
    assert summary["call_errors"] == 0


async def test_change_availability_reaches_a_simulated_station(
    deployment: Deployment, api: httpx.AsyncClient
) -> None:
    config = fleet(deployment, stations=1, duration=60)
    station_id = config.station_id(1)
    async with running(config):
        await eventually(
            lambda: station(api, station_id),
            lambda body: booted(body) and len(body["evses"]) == 2,
        )
        response = await api.post(
            f"/stations/{station_id}/availability",
            json={"operationalStatus": "Inoperative", "evse": {"id": 2}},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Accepted"}
        body = await eventually(
            lambda: station(api, station_id),
            lambda body: body["evses"][1]["connectors"][0]["status"] == "Unavailable",
        )
        assert body["evses"][0]["connectors"][0]["status"] == "Available"


def test_the_command_line_prints_a_json_summary(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            *("--url", deployment.ocpp_url, "-n", "5", "--prefix", prefix()),
            *("--source-addresses", "127.0.0.1,127.0.0.2", "--json"),
        ]
    )
    assert run(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["booted"], summary["call_errors"]) == (5, 0)
    assert summary["latency_ms"]["count"] == 5 * 3
