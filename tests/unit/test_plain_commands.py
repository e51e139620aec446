"""Plain command requests take a short way through the API (plain_commands.py); every request,
plain or not, must be answered as FastAPI's standard way answers it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from csms.bus.message import BusMessage
from csms.config import Settings
from csms.db.commands import CommandOutcome, CommandRoute, NewCommand
from csms_commands.app import create_app

PLAIN = "application/json"
# Also JSON, but not what the short way takes: FastAPI's standard way answers it.
STANDARD = "application/json; charset=utf-8"


class FakeJournal:
    async def create(self, command: NewCommand) -> CommandRoute | None:
        return None if command.station_id == "NEVER-SEEN" else CommandRoute("gateway-1")

    async def record(self, command: NewCommand, result: CommandOutcome) -> None:
        return None


class FakeBus:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], float]] = []

    async def request(self, _exchange: str, _key: str, message: BusMessage, **kw: Any) -> Any:
        self.requests.append((message.body, kw["timeout"]))
        return {"outcome": "answered", "payload": {"status": "Accepted"}}


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def client(bus: FakeBus) -> httpx.AsyncClient:
    settings = Settings(api_tokens="write-token", api_read_tokens="read-token")
    app = create_app(settings, bus, None, FakeJournal())  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


CASES: list[tuple[str, str, Any, str | None]] = [
    # (path, query, body, token)
    ("/stations/CS1/reset", "", {"type": "OnIdle", "evseId": 1}, "write-token"),
    ("/stations/CS1/reset", "?timeout=5", {"type": "Immediate"}, "write-token"),
    ("/stations/CS1/availability", "", {"operationalStatus": "Inoperative"}, "write-token"),
    (
        "/stations/CS1/availability",
        "",
        {"operationalStatus": "Operative", "evse": {"id": 1, "connectorId": 2}},
        "write-token",
    ),
    ("/stations/CS1/trigger-message", "", {"requestedMessage": "Heartbeat"}, "write-token"),
    ("/stations/NEVER-SEEN/reset", "", {"type": "OnIdle"}, "write-token"),
    ("/stations/CS1/reset", "", {"type": "OnIdle"}, None),
    ("/stations/CS1/reset", "", {"type": "OnIdle"}, "read-token"),
    ("/stations/CS1/reset", "", {"type": "Sometime"}, "write-token"),
    ("/stations/CS1/reset", "", {"type": "OnIdle", "extra": 1}, "write-token"),
    ("/stations/CS1/reset", "", [], "write-token"),
    ("/stations/CS1/reset", "", None, "write-token"),
    ("/stations/CS1/reset", "?timeout=0", {"type": "OnIdle"}, "write-token"),
    ("/stations/CS1/reset", "?timeout=-1", {"type": "OnIdle"}, "write-token"),
    ("/stations/CS1/reset", "?timeout=soon", {"type": "OnIdle"}, "write-token"),
    ("/stations/CS1/reset", "?timeout=100000", {"type": "OnIdle"}, "write-token"),
    ("/stations/CS1/reset", "?timeout=2.5", {"type": "OnIdle"}, None),
]


@pytest.mark.parametrize(("path", "query", "body", "token"), CASES)
async def test_plain_and_standard_requests_are_answered_alike(
    client: httpx.AsyncClient, path: str, query: str, body: Any, token: str | None
) -> None:
    answers = []
    for content_type in (PLAIN, STANDARD):
        headers = {"content-type": content_type}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        content = b"" if body is None else httpx.Request("POST", "/", json=body).content
        response = await client.post(path + query, content=content, headers=headers)
        answers.append(
            (response.status_code, response.json(), response.headers.get("www-authenticate"))
        )
    assert answers[0] == answers[1]


async def test_a_malformed_body_is_answered_alike(client: httpx.AsyncClient) -> None:
    answers = []
    for content_type in (PLAIN, STANDARD):
        headers = {"content-type": content_type, "authorization": "Bearer write-token"}
        response = await client.post("/stations/CS1/reset", content=b"{nope", headers=headers)
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 422


async def test_a_plain_request_sends_the_command_with_its_timeout(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    response = await client.post(
        "/stations/CS1/reset?timeout=5",
        json={"type": "OnIdle", "evseId": 2},
        headers={"authorization": "Bearer write-token"},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "Accepted"}
    ((body, timeout),) = bus.requests
    assert body["action"] == "Reset"
    assert body["payload"] == {"type": "OnIdle", "evseId": 2}
    assert timeout == pytest.approx(6.0)  # the station's 5 s and the API's grace


async def test_only_a_plain_request_takes_the_short_way(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard: list[str] = []
    fastapi_call = FastAPI.__call__

    async def through_fastapi(app: FastAPI, scope: Scope, receive: Receive, send: Send) -> None:
        standard.append(scope["path"])
        await fastapi_call(app, scope, receive, send)

    monkeypatch.setattr(FastAPI, "__call__", through_fastapi)
    headers = {"authorization": "Bearer write-token"}
    for content_type in (PLAIN, STANDARD):
        response = await client.post(
            "/stations/CS1/reset",
            content=b'{"type": "OnIdle"}',
            headers=headers | {"content-type": content_type},
        )
        assert response.json() == {"status": "Accepted"}
    assert standard == ["/stations/CS1/reset"]


async def test_a_large_body_takes_the_standard_way_whole(client: httpx.AsyncClient) -> None:
    body = {"type": "OnIdle", "note": "x" * 100_000}
    answers = []
    for content_type in (PLAIN, STANDARD):
        response = await client.post(
            "/stations/CS1/reset",
            json=body,
            headers={"authorization": "Bearer write-token", "content-type": content_type},
        )
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 422
