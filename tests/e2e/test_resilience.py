"""Crashes: nothing acknowledged to a station is lost, and presence recovers."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from benchmarks.memory import children
from tests.support import services
from tests.support.polling import eventually
from tests.support.processes import Deployment, distributed, standalone
from tests.support.raw import connect_raw
from tests.support.station import connect_station, now

pytestmark = pytest.mark.e2e


@pytest.fixture
def fragile(tmp_path: Path) -> Iterator[Deployment]:
    """A distributed CSMS of its own (own vhost and database), whose processes tests may kill."""
    vhost = services.unique_name("csms-crash")
    database = services.unique_name("csms_crash")
    amqp_url = services.create_vhost(vhost)
    database_url = services.run_sync(services.create_database(database))
    running = distributed(
        tmp_path,
        amqp_url,
        database_url,
        gateways=2,
        workers=1,
        settings={
            "CSMS_BOOT_DECISION_TIMEOUT": "1",
            "CSMS_GATEWAY_TIMEOUT": "2",
            "CSMS_MAINTENANCE_INTERVAL": "0.5",
            "CSMS_MAX_ADMISSIONS_IN_PROGRESS": "3",
            "CSMS_PRESENCE_TIMEOUT": "30",
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        services.delete_vhost(vhost)
        services.run_sync(services.drop_database(database))


async def test_messages_answered_while_no_worker_runs_are_stored_when_one_returns(
    fragile: Deployment,
) -> None:
    async with httpx.AsyncClient(base_url=fragile.api_url) as api:
        station = await connect_station(fragile.ocpp_url, "CS-crash-1")
        try:
            assert (await station.boot()).status == "Accepted"
            worker = fragile.process("worker-1")
            worker.stop(signal.SIGKILL)

            # The broker holds them: the station is answered, the writes wait for a worker.
            await station.status(1, 1, "Occupied", now())
            await station.notify(seq_no=0)
            # No worker to decide: the gateway never guesses Accepted.
            reboot = await station.boot(reason="Watchdog")
            assert (reboot.status, reboot.interval) == ("Pending", 10)

            worker.start()
            worker.wait_healthy()
            body = (
                await eventually(
                    lambda: api.get("/stations/CS-crash-1"),
                    lambda r: bool(r.json()["evses"]),
                    timeout=40,
                )
            ).json()
            assert body["evses"][0]["connectors"][0]["status"] == "Occupied"
            events = await eventually(
                lambda: api.get("/stations/CS-crash-1/events"), lambda r: r.json()["total"] == 1
            )
            assert events.json()["items"][0]["seqNo"] == 0
        finally:
            await station.stop()


async def test_a_dead_gateways_stations_go_offline_and_reconnect_elsewhere(
    fragile: Deployment,
) -> None:
    async with httpx.AsyncClient(base_url=fragile.api_url, timeout=30) as api:
        first = await connect_station(fragile.ocpp_urls[0], "CS-crash-2")
        await first.boot()
        await eventually(
            lambda: api.get("/stations/CS-crash-2"), lambda r: r.json()["connected"] is True
        )
        fragile.process("gateway-1").stop(signal.SIGKILL)
        # Within the gateway timeout (2 s) and a few beats of the survivor.
        await eventually(
            lambda: api.get("/stations/CS-crash-2"), lambda r: r.json()["connected"] is False
        )
        again = await connect_station(fragile.ocpp_urls[1], "CS-crash-2")
        try:
            await again.heartbeat()
            response = await api.post(
                "/stations/CS-crash-2/availability", json={"operationalStatus": "Operative"}
            )
            assert response.json() == {"status": "Accepted"}
            await eventually(
                lambda: api.get("/stations/CS-crash-2"), lambda r: r.json()["connected"] is True
            )
        finally:
            await again.stop()
            await first.stop()


async def test_a_station_leaving_while_its_boot_waits_is_let_go(fragile: Deployment) -> None:
    """No worker answers the registration, so the boot waits; the station hangs up meanwhile.
    The gateway must drop the connection at once, not hold it (and count it) for good."""
    fragile.process("worker-1").stop(signal.SIGKILL)
    metrics_url = fragile.ocpp_url.replace("ws://", "http://").removesuffix("/ocpp") + "/metrics"
    connection = await connect_raw(fragile.ocpp_url, "CS-gone-1")
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    await connection.send(json.dumps([2, "boot-1", "BootNotification", boot]))
    async with httpx.AsyncClient() as http:
        await eventually(
            lambda: http.get(metrics_url), lambda r: "csms_gateway_connections 1\n" in r.text
        )
        await connection.close()
        await eventually(
            lambda: http.get(metrics_url),
            lambda r: "csms_gateway_connections 0\n" in r.text,
            timeout=5,
        )


async def test_a_storm_beyond_what_is_in_progress_is_shed_with_503_and_retry_after(
    fragile: Deployment,
) -> None:
    """With no worker, registrations stay in progress: past the bound, connections are refused
    at once (not left to time out), and admitted again once the worker is back."""
    worker = fragile.process("worker-1")
    worker.stop(signal.SIGKILL)
    held = [await connect_raw(fragile.ocpp_url, f"CS-storm-{n}") for n in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await connect_raw(fragile.ocpp_url, "CS-storm-4")
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "2"
    worker.start()
    worker.wait_healthy()
    later = await eventually(
        lambda: _try_connect(fragile.ocpp_url, "CS-storm-4"), lambda c: c is not None, timeout=30
    )
    assert later is not None
    await later.close()
    for connection in held:
        await connection.close()


async def _try_connect(url: str, station_id: str) -> ClientConnection | None:
    try:
        return await connect_raw(url, station_id)
    except InvalidStatus:
        return None


@pytest.mark.parametrize("stopped_by", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill"])
async def test_the_standalone_sqlite_writer_process_ends_with_csms_run(
    tmp_path: Path, stopped_by: signal.Signals
) -> None:
    running = standalone(tmp_path)
    running.start()
    try:
        popen = running.process("csms-run").popen
        assert popen is not None
        writers = await eventually(lambda: _children(popen.pid), bool)
        popen.send_signal(stopped_by)
        popen.wait(timeout=20)
        await eventually(lambda: _ended(writers), bool)
    finally:
        running.stop()


async def _children(pid: int) -> list[int]:
    return children(pid)


async def _ended(pids: list[int]) -> bool:
    """Whether every process has exited (gone, or a zombie its new parent has not reaped)."""
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state not in ("Z", "X"):
            return False
    return True
