"""Who may open a socket (OCPP 2.0.1 security profiles 1-3, section 2 of the rules digest).

Credentials come from the registry over the bus and are cached; a password check (argon2id,
tens of milliseconds) runs in a bounded thread pool and its success is remembered, so a
reconnect storm of good stations costs neither database round trips nor hashing, and a flood
of bad attempts cannot starve them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import CredentialsReply
from csms.bus.message import BusError, BusMessage
from csms.config import Settings
from csms.security.passwords import verify_password

log = logging.getLogger(__name__)

# Password checks allowed to wait for a thread; more are refused at once (503).
_MAX_PENDING_CHECKS = 64
_CHECK_THREADS = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    status: HTTPStatus
    reason: str
    # Counted and logged as a security event under this name.
    event: str
    basic_challenge: bool = False


@dataclass(slots=True)
class _Cached:
    credentials: CredentialsReply
    expires: float


class Admission:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self._bus = bus
        self._settings = settings
        self._cache: dict[str, _Cached] = {}
        # station -> (password hash it was checked against, SHA-256 of the accepted password)
        self._verified: dict[str, tuple[str, str]] = {}
        self._failures: dict[str, list[float]] = {}
        self._checks = asyncio.Semaphore(_CHECK_THREADS)
        self._pending_checks = 0
        self.refusals: Counter[str] = Counter()

    def refuse_tls(self, error: ssl.SSLError) -> None:
        """A TLS handshake failed: wrong protocol version, or a client certificate refused."""
        self.refusals["TlsHandshakeFailed"] += 1
        log.warning("security event TlsHandshakeFailed: %s", error.reason or error)

    def refuse_after_upgrade(self, station_id: str, reason: str) -> None:
        self.refusals["ProfileTooLow"] += 1
        log.warning("security event ProfileTooLow: station %s refused (%s)", station_id, reason)

    def forget(self, station_id: str) -> None:
        """Drop what is cached for a station (its registration changed)."""
        self._cache.pop(station_id, None)
        self._verified.pop(station_id, None)
        self._failures.pop(station_id, None)

    async def admit(
        self, station_id: str, authorization: str | None, client_cn: str | None
    ) -> Refusal | None:
        """None if the connection may be upgraded, else why not."""
        refusal = await self._check(station_id, authorization, client_cn)
        if refusal is not None:
            self.refusals[refusal.event] += 1
            log.warning(
                "security event %s: station %s refused (%s)",
                refusal.event,
                station_id,
                refusal.reason,
            )
        return refusal

    async def _check(
        self, station_id: str, authorization: str | None, client_cn: str | None
    ) -> Refusal | None:
        profile = self._settings.security_profile
        if profile == 0:
            # No credentials to check: nothing is looked up on the hot path of a reconnect
            # storm. A station registered for a stronger profile is refused right after the
            # upgrade, when its registration arrives (Relay), before any message is served.
            return None
        try:
            credentials = await self._credentials(station_id)
        except BusError:
            return Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "registry unavailable", "RegistryDown")
        if not credentials["registered"]:
            if profile > 0:
                return Refusal(HTTPStatus.NOT_FOUND, "unknown station", "UnknownStation")
            return None
        if credentials["securityProfile"] > profile:
            return Refusal(
                HTTPStatus.FORBIDDEN,
                f"registered for security profile {credentials['securityProfile']}, "
                f"this endpoint is profile {profile}",
                "ProfileTooLow",
            )
        if profile == 3:
            if client_cn != station_id:
                return Refusal(
                    HTTPStatus.FORBIDDEN, "client certificate does not name the station", "BadCert"
                )
            return None
        if profile in (1, 2):
            return await self._check_password(station_id, authorization, credentials)
        return None

    async def _credentials(self, station_id: str) -> CredentialsReply:
        cached = self._cache.get(station_id)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.credentials
        reply = await self._bus.request(
            topology.EVENTS_EXCHANGE,
            topology.STATION_CREDENTIALS,
            BusMessage(body={"stationId": station_id}, type=topology.STATION_CREDENTIALS),
            timeout=self._settings.presence_timeout,
        )
        credentials = cast(CredentialsReply, reply)
        self._cache[station_id] = _Cached(credentials, now + self._settings.credentials_cache_ttl)
        return credentials

    async def _check_password(
        self, station_id: str, authorization: str | None, credentials: CredentialsReply
    ) -> Refusal | None:
        basic = _basic_credentials(authorization)
        if basic is None:
            return Refusal(
                HTTPStatus.UNAUTHORIZED, "Basic credentials required", "NoCredentials", True
            )
        username, password = basic
        if username != station_id:
            return Refusal(
                HTTPStatus.UNAUTHORIZED, "username is not the station identity", "WrongUser", True
            )
        password_hash = credentials["passwordHash"]
        if password_hash is None:
            return Refusal(HTTPStatus.UNAUTHORIZED, "no password registered", "NoPassword", True)
        fingerprint = hashlib.sha256(password.encode()).hexdigest()
        if self._verified.get(station_id) == (password_hash, fingerprint):
            return None
        if self._locked_out(station_id):
            return Refusal(
                HTTPStatus.TOO_MANY_REQUESTS, "too many failed attempts", "LockedOut", True
            )
        if self._pending_checks >= _MAX_PENDING_CHECKS:
            return Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "busy, try later", "CheckOverload")
        self._pending_checks += 1
        try:
            async with self._checks:
                valid = await asyncio.to_thread(verify_password, password_hash, password)
        finally:
            self._pending_checks -= 1
        if not valid:
            self._failures.setdefault(station_id, []).append(time.monotonic())
            return Refusal(HTTPStatus.UNAUTHORIZED, "wrong password", "WrongPassword", True)
        self._verified[station_id] = (password_hash, fingerprint)
        self._failures.pop(station_id, None)
        return None

    def _locked_out(self, station_id: str) -> bool:
        window_start = time.monotonic() - self._settings.auth_lockout
        recent = [at for at in self._failures.get(station_id, []) if at > window_start]
        if recent:
            self._failures[station_id] = recent
        else:
            self._failures.pop(station_id, None)
        return len(recent) >= self._settings.auth_failure_limit


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, password = decoded.partition(":")
    return (username, password) if separator else None
