"""Station admission and security (OCTT-style A and B cases), API tokens, input limits."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from ocpp.exceptions import SecurityError
from websockets.exceptions import InvalidStatus

from tests.support.certs import Authority, Issued
from tests.support.polling import eventually
from tests.support.processes import Deployment, standalone
from tests.support.raw import connect_raw, exchange
from tests.support.station import basic_auth, connect_station

pytestmark = pytest.mark.e2e

WRITE_TOKEN = "csms_test_write_token_0123456789abcdef"
READ_TOKEN = "csms_test_read_token_0123456789abcdef"
PASSWORD = "correct-horse-battery-staple"
AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca, rogue = Authority(folder, "csms"), Authority(folder, "rogue")
    return {
        "ca": ca,
        "server": ca.issue("localhost", server=True),
        "rogue": rogue,
    }


def _run(tmp: Path, settings: dict[str, str]) -> Iterator[Deployment]:
    running = standalone(
        tmp, {"CSMS_API_TOKENS": WRITE_TOKEN, "CSMS_API_READ_TOKENS": READ_TOKEN} | settings
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def profile1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Basic auth over ws://, with small input limits to test them."""
    yield from _run(
        tmp_path_factory.mktemp("profile1"),
        {
            "CSMS_SECURITY_PROFILE": "1",
            "CSMS_STATION_RATE": "2",
            "CSMS_STATION_BURST": "5",
            "CSMS_STATION_ABUSE_LIMIT": "20",
            "CSMS_MAX_QUEUED_COMMANDS": "0",
            "CSMS_BOOT_RETRY_INTERVAL": "45",
        },
    )


@pytest.fixture(scope="module")
def profile2(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, object]
) -> Iterator[Deployment]:
    server = pki["server"]
    yield from _run(
        tmp_path_factory.mktemp("profile2"),
        {
            "CSMS_SECURITY_PROFILE": "2",
            "CSMS_TLS_CERT_FILE": str(server.cert),  # type: ignore[attr-defined]
            "CSMS_TLS_KEY_FILE": str(server.key),  # type: ignore[attr-defined]
        },
    )


@pytest.fixture(scope="module")
def profile3(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, object]
) -> Iterator[Deployment]:
    server, ca = pki["server"], pki["ca"]
    yield from _run(
        tmp_path_factory.mktemp("profile3"),
        {
            "CSMS_SECURITY_PROFILE": "3",
            "CSMS_TLS_CERT_FILE": str(server.cert),  # type: ignore[attr-defined]
            "CSMS_TLS_KEY_FILE": str(server.key),  # type: ignore[attr-defined]
            "CSMS_TLS_CA_FILE": str(ca.cert_path),  # type: ignore[attr-defined]
        },
    )


async def _client(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.api_url, headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture
async def api1(profile1: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(profile1):
        yield client


async def _register(api: httpx.AsyncClient, station_id: str, **fields: object) -> dict[str, object]:
    response = await api.post("/stations", json={"id": station_id} | fields)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _tls(
    ca: Authority, client: tuple[Path, Path] | None = None, **versions: ssl.TLSVersion
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    for name, version in versions.items():
        setattr(context, name, version)
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def _refusals(deployment: Deployment, reason: str, client: Issued | None = None) -> int:
    """A gateway's refusal counter, read from its /metrics (mutual TLS needs a client)."""
    base = deployment.ocpp_url.replace("wss://", "https://").replace("ws://", "http://")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    if client is not None:
        insecure.load_cert_chain(str(client.cert), str(client.key))
    metrics = httpx.get(base.removesuffix("/ocpp") + "/metrics", verify=insecure).text
    for line in metrics.splitlines():
        if line.startswith(f'csms_gateway_refusals_total{{reason="{reason}"}}'):
            return int(line.split()[-1])
    return 0


async def _value(value: object) -> object:
    return value


async def _refused(url: str, **connect: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, subprotocols=["ocpp2.0.1"], **connect)  # type: ignore[arg-type]
    status: int = refused.value.response.status_code
    return status


# Security profile 1: Basic auth


async def test_a01_valid_basic_credentials_boot_accepted(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    try:
        assert (await station.boot()).status == "Accepted"
    finally:
        await station.stop()


async def test_generated_password_is_returned_once_and_works(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    body = await _register(api1, station_id, securityProfile=1)
    password = body["password"]
    assert isinstance(password, str)
    assert 16 <= len(password) <= 40
    assert "password" not in (await api1.get(f"/stations/{station_id}")).json()
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, password)
    )
    await station.stop()


async def test_a02_username_not_the_identity_is_refused(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    url = f"{profile1.ocpp_url}/{station_id}"
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            url, subprotocols=["ocpp2.0.1"], additional_headers=basic_auth("someone-else", PASSWORD)
        )
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("password", ["wrong-password-123456", None], ids=["wrong", "missing"])
async def test_a03_wrong_or_missing_password_is_401(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str, password: str | None
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    headers = basic_auth(station_id, password) if password else {}
    assert await _refused(f"{profile1.ocpp_url}/{station_id}", additional_headers=headers) == 401


async def test_unknown_identity_is_404_when_a_profile_is_configured(
    profile1: Deployment, station_id: str
) -> None:
    assert (
        await _refused(
            f"{profile1.ocpp_url}/{station_id}", additional_headers=basic_auth(station_id, PASSWORD)
        )
        == 404
    )


async def test_station_registered_for_a_higher_profile_is_refused(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=2, password=PASSWORD)
    assert (
        await _refused(
            f"{profile1.ocpp_url}/{station_id}", additional_headers=basic_auth(station_id, PASSWORD)
        )
        == 403
    )


async def test_repeated_bad_passwords_lock_out_guessing_but_not_the_known_good_station(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    good = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    await good.stop()
    url = f"{profile1.ocpp_url}/{station_id}"
    statuses = [
        await _refused(url, additional_headers=basic_auth(station_id, f"guess-{n:016d}"))
        for n in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    again = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    await again.stop()


async def test_password_rotation_takes_effect_and_refusals_are_counted(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    new_password = "a-brand-new-password-42"
    response = await api1.patch(f"/stations/{station_id}", json={"password": new_password})
    assert response.status_code == 200
    url = f"{profile1.ocpp_url}/{station_id}"
    assert await _refused(url, additional_headers=basic_auth(station_id, PASSWORD)) == 401
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, new_password)
    )
    await station.stop()
    metrics = httpx.get(
        profile1.ocpp_url.replace("ws://", "http://").removesuffix("/ocpp") + "/metrics"
    ).text
    assert 'csms_gateway_refusals_total{reason="WrongPassword"}' in metrics


# Security profiles 2 and 3: TLS


async def test_a04_tls_with_basic_auth(
    profile2: Deployment, pki: dict[str, object], station_id: str
) -> None:
    async for api in _client(profile2):
        await _register(api, station_id, securityProfile=2, password=PASSWORD)
    station = await connect_station(
        profile2.ocpp_url,
        station_id,
        additional_headers=basic_auth(station_id, PASSWORD),
        ssl=_tls(pki["ca"]),  # type: ignore[arg-type]
    )
    try:
        assert station._connection.transport.get_extra_info("ssl_object").version() in (
            "TLSv1.2",
            "TLSv1.3",
        )
        assert (await station.boot()).status == "Accepted"
    finally:
        await station.stop()


async def test_a06_tls_version_below_1_2_is_terminated(
    profile2: Deployment, pki: dict[str, object], station_id: str
) -> None:
    # A client really offering TLS 1.0-1.1 (OpenSSL refuses to by default).
    with pytest.warns(DeprecationWarning, match="TLSv1"):
        context = _tls(
            pki["ca"],  # type: ignore[arg-type]
            minimum_version=ssl.TLSVersion.TLSv1,
            maximum_version=ssl.TLSVersion.TLSv1_1,
        )
    context.set_ciphers("ALL:@SECLEVEL=0")
    before = _refusals(profile2, "TlsHandshakeFailed")
    with pytest.raises((ssl.SSLError, OSError)):
        await websockets.connect(
            f"{profile2.ocpp_url}/{station_id}", subprotocols=["ocpp2.0.1"], ssl=context
        )
    await eventually(
        lambda: _value(_refusals(profile2, "TlsHandshakeFailed")), lambda n: n > before
    )


async def test_a07_valid_client_certificate(
    profile3: Deployment, pki: dict[str, object], station_id: str
) -> None:
    async for api in _client(profile3):
        await _register(api, station_id, securityProfile=3)
    issued = pki["ca"].issue(station_id)  # type: ignore[attr-defined]
    station = await connect_station(
        profile3.ocpp_url, station_id, ssl=_tls(pki["ca"], (issued.cert, issued.key))
    )  # type: ignore[arg-type]
    try:
        assert (await station.boot()).status == "Accepted"
    finally:
        await station.stop()


@pytest.mark.parametrize("case", ["unknown-ca", "expired", "wrong-cn", "none"])
async def test_a08_invalid_client_certificate_is_terminated(
    profile3: Deployment, pki: dict[str, object], station_id: str, case: str
) -> None:
    async for api in _client(profile3):
        await _register(api, station_id, securityProfile=3)
    ca = pki["ca"]
    issued = {
        "unknown-ca": lambda: pki["rogue"].issue(station_id),  # type: ignore[attr-defined]
        "expired": lambda: ca.issue(station_id, expired=True),  # type: ignore[attr-defined]
        "wrong-cn": lambda: ca.issue("some-other-station"),  # type: ignore[attr-defined]
        "none": lambda: None,
    }[case]()
    context = _tls(ca, (issued.cert, issued.key) if issued else None)  # type: ignore[arg-type]
    url = f"{profile3.ocpp_url}/{station_id}"
    if case == "wrong-cn":
        assert await _refused(url, ssl=context) == 403
        return
    monitor = ca.issue("monitoring")  # type: ignore[attr-defined]
    before = _refusals(profile3, "TlsHandshakeFailed", monitor)
    refused = (ssl.SSLError, OSError, websockets.InvalidMessage, websockets.ConnectionClosed)
    with pytest.raises(refused):  # noqa: PT012 (TLS 1.3 reports a refused certificate on first read)
        connection = await websockets.connect(url, subprotocols=["ocpp2.0.1"], ssl=context)
        await connection.recv()
    await eventually(
        lambda: _value(_refusals(profile3, "TlsHandshakeFailed", monitor)), lambda n: n > before
    )


# Pending and Rejected (B_02, B_30, B_31)


async def test_b02_pending_then_accepted_with_trigger_message(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(
        api1, station_id, securityProfile=1, password=PASSWORD, registrationStatus="Pending"
    )
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    try:
        pending = await station.boot()
        assert (pending.status, pending.interval) == ("Pending", 45)
        response = await api1.patch(
            f"/stations/{station_id}", json={"registrationStatus": "Accepted"}
        )
        assert response.status_code == 200
        assert response.json()["bootTriggered"] == "Accepted"
        assert ("TriggerMessage", {"requestedMessage": "BootNotification"}) in station.received
        await eventually(lambda: _async(station.last_boot_status), lambda s: s == "Accepted")
        assert station.boot_reasons == ["PowerUp", "Triggered"]
        await station.status(1, 1, "Available")
    finally:
        await station.stop()


async def _async(value: object) -> object:
    return value


@pytest.mark.parametrize("status", ["Pending", "Rejected"])
async def test_b30_security_error_while_pending_or_rejected(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str, status: str
) -> None:
    await _register(
        api1, station_id, securityProfile=1, password=PASSWORD, registrationStatus=status
    )
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    try:
        assert (await station.boot()).status == status
        with pytest.raises(SecurityError):
            await station.status(1, 1, "Available")
        with pytest.raises(SecurityError):
            await station.notify(seq_no=0)
        # Nothing but the provisioning messages is sent to it: Reset is refused.
        response = await api1.post(f"/stations/{station_id}/reset", json={"type": "Immediate"})
        assert response.status_code == 409
        assert status in response.json()["detail"]
        assert station.received == []
    finally:
        await station.stop()


async def test_b31_trigger_message_while_pending(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(
        api1, station_id, securityProfile=1, password=PASSWORD, registrationStatus="Pending"
    )
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    try:
        assert (await station.boot()).status == "Pending"
        response = await api1.post(
            f"/stations/{station_id}/trigger-message", json={"requestedMessage": "BootNotification"}
        )
        assert response.json() == {"status": "Accepted"}
        await eventually(
            lambda: _async(station.boot_reasons), lambda r: r == ["PowerUp", "Triggered"]
        )
    finally:
        await station.stop()


async def test_rejecting_a_connected_station_closes_it_and_it_stays_rejected(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    await station.boot()
    assert (
        await api1.patch(f"/stations/{station_id}", json={"registrationStatus": "Rejected"})
    ).status_code == 200
    await asyncio.wait_for(station._connection.wait_closed(), timeout=10)
    again = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    try:
        assert (await again.boot()).status == "Rejected"
    finally:
        await again.stop()


async def test_registry_api(api1: httpx.AsyncClient, station_id: str) -> None:
    body = await _register(
        api1,
        station_id,
        securityProfile=1,
        password=PASSWORD,
        heartbeatInterval=120,
        evses=[{"id": 1, "connectors": [{"id": 1, "type": "cType2"}, {"id": 2, "type": "cCCS2"}]}],
    )
    assert body["securityProfile"] == 1
    assert body["heartbeatInterval"] == 120
    assert body["evses"] == [{"id": 1, "connectors": [
        {"id": 1, "status": None, "statusAt": None, "type": "cType2"},
        {"id": 2, "status": None, "statusAt": None, "type": "cCCS2"},
    ]}]  # fmt: skip
    assert "password" not in body
    assert (await api1.post("/stations", json={"id": station_id})).status_code == 409
    assert (await api1.post("/stations", json={"id": "bad:id"})).status_code == 422
    assert (await api1.post("/stations", json={"id": "X", "password": "short"})).status_code == 422
    assert (
        await api1.patch(f"/stations/{station_id}", json={"registrationStatus": "Maybe"})
    ).status_code == 422
    assert (
        await api1.patch("/stations/never-seen-here", json={"heartbeatInterval": 60})
    ).status_code == 404
    assert (await api1.delete(f"/stations/{station_id}")).status_code == 204
    assert (await api1.get(f"/stations/{station_id}")).status_code == 404
    assert (await api1.delete(f"/stations/{station_id}")).status_code == 404


# Operator API tokens


async def test_api_requires_a_token_and_read_tokens_cannot_command(
    profile1: Deployment, station_id: str
) -> None:
    async with httpx.AsyncClient(base_url=profile1.api_url) as anonymous:
        assert (await anonymous.get("/health")).status_code == 200
        refused = await anonymous.get("/stations")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        wrong = await anonymous.get("/stations", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        reader = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert (await anonymous.get("/stations", headers=reader)).status_code == 200
        forbidden = await anonymous.post(
            f"/stations/{station_id}/reset", json={"type": "OnIdle"}, headers=reader
        )
        assert forbidden.status_code == 403
        assert (
            await anonymous.post("/stations", json={"id": station_id}, headers=reader)
        ).status_code == 403
        schemes = (await anonymous.get("/openapi.json")).json()["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["scheme"] == "bearer"


async def test_token_issued_by_the_cli_works_until_revoked(profile1: Deployment) -> None:
    output = profile1.csms("tokens", "add", "integration", "--read-only").stdout.splitlines()
    token_id, token = output[0].split()[1], output[1]
    async with httpx.AsyncClient(
        base_url=profile1.api_url, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        assert (await api.get("/stations")).status_code == 200
        profile1.csms("tokens", "revoke", token_id)
        await eventually(lambda: api.get("/stations"), lambda r: r.status_code == 401, timeout=15)


# Input limits


async def test_excess_calls_are_refused_and_sustained_abuse_closes_the_socket(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    bystander_id = f"{station_id}-calm"
    await _register(api1, bystander_id, securityProfile=1, password=PASSWORD)
    bystander = await connect_station(
        profile1.ocpp_url, bystander_id, additional_headers=basic_auth(bystander_id, PASSWORD)
    )
    await bystander.boot()
    connection = await connect_raw(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    codes = [
        (
            await exchange(
                connection,
                [2, f"m{n}", "BootNotification" if n == 0 else "Heartbeat", boot if n == 0 else {}],
            )
        )[0:3]
        for n in range(10)
    ]
    refused = [c for c in codes if c[0] == 4]
    assert refused
    assert {c[2] for c in refused} == {"GenericError"}
    await bystander.heartbeat()  # other stations are unaffected
    for n in range(40):
        try:
            await connection.send(f'[2, "x{n}", "Heartbeat", {{}}]')
        except websockets.ConnectionClosed:
            break
    await connection.wait_closed()
    assert connection.close_code == 1008
    await bystander.stop()


async def test_commands_queued_beyond_the_bound_get_429(
    profile1: Deployment, api1: httpx.AsyncClient, station_id: str
) -> None:
    await _register(api1, station_id, securityProfile=1, password=PASSWORD)
    station = await connect_station(
        profile1.ocpp_url, station_id, additional_headers=basic_auth(station_id, PASSWORD)
    )
    await station.boot()
    station.answer = "silent"
    station.late_answer_delay = 2.0
    try:
        first = asyncio.create_task(
            api1.post(
                f"/stations/{station_id}/reset", json={"type": "OnIdle"}, params={"timeout": 5}
            )
        )
        await asyncio.sleep(0.5)
        second = await api1.post(
            f"/stations/{station_id}/reset", json={"type": "OnIdle"}, params={"timeout": 5}
        )
        assert second.status_code == 429
        assert (await first).status_code == 200
    finally:
        await station.stop()
