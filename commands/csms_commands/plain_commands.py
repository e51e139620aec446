"""The commands API's FastAPI application, with a short way in for plain command requests.

For a command, FastAPI's request handling costs more CPU than the command itself: solving the
endpoint's parameters (path, query, body, the bearer scheme, the dependency), then the
middleware stack and the routing around the endpoint. A plain request, the hot path, is
answered before any of it, with FastAPI's own pieces: a JSON body the endpoint's model accepts,
a `timeout` written as a plain positive number or none. Anything else goes the standard way,
so every 422 and its details are FastAPI's own; the errors raised on the short way (401, 403,
and the command's 404, 409, 503, 504) are answered by FastAPI's handler.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import Message, Receive, Scope, Send

from csms.ocpp.actions import CsmsAction
from csms.security.tokens import Scope as TokenScope
from csms_commands.auth import authorize, bearer
from csms_commands.dependencies import CommandContext, command_context_of

SendCommand = Callable[[CommandContext, str, CsmsAction, BaseModel, float | None], Awaitable[Any]]

# What FastAPI's float parameter surely reads alike; other spellings take the standard way.
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
# A larger body takes the standard way.
_MAX_PLAIN_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class PlainCommand:
    action: CsmsAction
    model: type[BaseModel]
    send: SendCommand


# Endpoint function -> how to run its plain requests (filled by the module defining them).
PLAIN_COMMANDS: dict[Callable[..., Any], PlainCommand] = {}


class CommandApi(FastAPI):
    """FastAPI, with plain command requests answered first. Middleware added to the
    application does not see them: what it must do for them belongs in `_answer_plain`."""

    _plain_routes: tuple[tuple[re.Pattern[str], PlainCommand], ...] = ()

    def include_commands(self, router: APIRouter) -> None:
        """Include the command router: its routes in PLAIN_COMMANDS take the short way. Include
        it first: a path of its own is then matched by no other route."""
        self.include_router(router)
        self._plain_routes += tuple(
            (route.path_regex, PLAIN_COMMANDS[route.endpoint])
            for route in router.routes
            if isinstance(route, APIRoute) and route.endpoint in PLAIN_COMMANDS
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        command = self._plain_command(scope)
        if command is not None:
            received, whole = await _read_body(receive)
            if whole:
                response = await self._answer_plain(scope, receive, received, *command)
                if response is not None:
                    await response(scope, receive, send)
                    return
            receive = _replaying(received, receive)
        await super().__call__(scope, receive, send)

    def _plain_command(self, scope: Scope) -> tuple[str, PlainCommand] | None:
        """The station id and the command of a request to a plain command's path."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        for path, command in self._plain_routes:
            match = path.match(scope["path"])
            if match is not None:
                return match["station_id"], command
        return None

    async def _answer_plain(
        self,
        scope: Scope,
        receive: Receive,
        received: list[Message],
        station_id: str,
        command: PlainCommand,
    ) -> Response | None:
        """The command's response, or None if the request is not plain."""
        request = Request({**scope, "app": self}, receive)
        if request.headers.get("content-type") != "application/json":
            return None
        timeout: float | None = None
        if scope["query_string"]:
            raw_timeout = request.query_params.get("timeout")
            if raw_timeout is not None:
                if not _PLAIN_NUMBER.fullmatch(raw_timeout):
                    return None
                timeout = float(raw_timeout)
                if timeout <= 0:
                    return None
        raw_body = b"".join(message.get("body", b"") for message in received)
        if not raw_body:
            return None
        try:
            body = command.model.model_validate(json.loads(raw_body))
        except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
            return None
        try:
            # As the standard way: HTTPBearer, then the write check, which raises 401 or 403.
            await authorize(request, await bearer(request), TokenScope.WRITE)
            response: Response = await command.send(
                command_context_of(request), station_id, command.action, body, timeout
            )
        except HTTPException as error:
            # The 401 or 403, or what the command raised (404, 409, 503, 504), answered as
            # FastAPI's exception middleware does: by the handler of the nearest class.
            handler = next(
                self.exception_handlers[cls]
                for cls in type(error).__mro__
                if cls in self.exception_handlers
            )
            answer = handler(request, error)
            response = await answer if inspect.isawaitable(answer) else answer
        return response


async def _read_body(receive: Receive) -> tuple[list[Message], bool]:
    """The messages received until the request's body ended, and whether it did (not if the
    client left or the body grew too large)."""
    received: list[Message] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return received, False
        size += len(message.get("body", b""))
        if size > _MAX_PLAIN_BODY:
            return received, False
        if not message.get("more_body", False):
            return received, True


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """`receive` as if nothing had been received yet."""
    waiting = list(received)

    async def replay() -> Message:
        if waiting:
            return waiting.pop(0)
        return await receive()

    return replay
