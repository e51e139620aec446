"""Bearer-token authentication for the operator API.

Tokens come from the environment (`CSMS_API_TOKENS`, `CSMS_API_READ_TOKENS`) or are issued with
`csms tokens add` and stored as SHA-256. With no token anywhere the API is open, for
development; the first token configured or issued closes it.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.config import Settings
from csms.db.registry import any_api_token, find_api_token
from csms.security.tokens import Scope, token_hash

log = logging.getLogger(__name__)

# Looked-up tokens are trusted this long; a revoked token stops working within it.
_CACHE_SECONDS = 10.0

bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer <token>`")


class TokenChecker:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._configured: dict[str, Scope] = {}
        for scope, tokens in (
            (Scope.WRITE, settings.api_tokens),
            (Scope.READ, settings.api_read_tokens),
        ):
            for token in filter(None, (t.strip() for t in tokens.split(","))):
                self._configured[token_hash(token)] = scope
        self._cache: dict[str, tuple[Scope | None, float]] = {}
        self._open_until = 0.0

    async def scope_of(self, token: str | None) -> Scope | None:
        """The token's scope; WRITE for anyone while the API is open; None if refused."""
        if await self._is_open():
            return Scope.WRITE
        if not token:
            return None
        digest = token_hash(token)
        if digest in self._configured:
            return self._configured[digest]
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            stored = await find_api_token(session, token_hash=digest)
        scope = Scope(stored.scope) if stored is not None else None
        self._cache[digest] = (scope, now + _CACHE_SECONDS)
        return scope

    async def _is_open(self) -> bool:
        if self._configured:
            return False
        now = time.monotonic()
        if self._open_until > now:
            return True
        async with self._sessions() as session:
            if await any_api_token(session):
                return False
        self._open_until = now + _CACHE_SECONDS
        return True


def _checker(request: Request) -> TokenChecker:
    checker: TokenChecker = request.app.state.tokens
    return checker


async def authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Scope
) -> Scope:
    """The caller's scope if it allows `needed`: 401 without a valid token, 403 for a read
    token where writing is needed."""
    scope = await _checker(request).scope_of(credentials.credentials if credentials else None)
    if scope is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid API token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if needed is Scope.WRITE and scope is not Scope.WRITE:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only read")
    return scope


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def read_access(request: Request, credentials: Credentials) -> Scope:
    return await authorize(request, credentials, Scope.READ)


async def write_access(request: Request, credentials: Credentials) -> Scope:
    return await authorize(request, credentials, Scope.WRITE)
