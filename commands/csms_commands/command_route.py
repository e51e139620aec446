"""The command endpoints' route class: a plain request skips FastAPI's parameter solving.

Solving an endpoint's parameters (path, query, body, the bearer scheme, the dependency) is about
40% of the API's CPU per command in FastAPI. A plain request, the hot path, is handled here with
FastAPI's own pieces instead: a JSON body the endpoint's model accepts, a `timeout` written as
a plain positive number or none. Anything else goes the standard way, so every error answer
(401, 403, 422 and its details) is FastAPI's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from csms.ocpp.actions import CsmsAction
from csms.security.tokens import Scope
from csms_commands.auth import authorize, bearer
from csms_commands.dependencies import CommandContext, command_context_of

Send = Callable[[CommandContext, str, CsmsAction, BaseModel, float | None], Awaitable[Any]]

# What FastAPI's float parameter surely reads alike; other spellings take the standard way.
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class PlainCommand:
    action: CsmsAction
    model: type[BaseModel]
    send: Send


# Endpoint function -> how to run its plain requests (filled by the module defining them).
PLAIN_COMMANDS: dict[Callable[..., Any], PlainCommand] = {}


class CommandRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handle(request: Request) -> Response:
            command = PLAIN_COMMANDS.get(self.endpoint)
            if command is not None:
                response = await _plain(request, command)
                if response is not None:
                    return response
            return await standard(request)

        return handle


async def _plain(request: Request, command: PlainCommand) -> Response | None:
    """The command's response, or None if the request is not plain."""
    if request.headers.get("content-type") != "application/json":
        return None
    timeout: float | None = None
    raw_timeout = request.query_params.get("timeout")
    if raw_timeout is not None:
        if not _PLAIN_NUMBER.fullmatch(raw_timeout):
            return None
        timeout = float(raw_timeout)
        if timeout <= 0:
            return None
    raw_body = await request.body()
    if not raw_body:
        return None
    try:
        body = command.model.model_validate(json.loads(raw_body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        return None
    # As the standard way: HTTPBearer, then the write check, which raises 401 or 403.
    await authorize(request, await bearer(request), Scope.WRITE)
    station_id: str = request.path_params["station_id"]
    response: Response = await command.send(
        command_context_of(request), station_id, command.action, body, timeout
    )
    return response
