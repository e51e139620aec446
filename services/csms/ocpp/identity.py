"""Station identity from the connection URL (OCPP 2.0.1 Part 4, section 3.1.1)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

OCPP_PATH_PREFIX = "/ocpp/"
MAX_IDENTITY_LENGTH = 48
# identifierString without ':' (the identity is also the Basic-auth username).
_IDENTITY = re.compile(rf"[A-Za-z0-9*\-_=+|@.]{{1,{MAX_IDENTITY_LENGTH}}}")


class BadPath(ValueError):
    """The URL is not `/ocpp/<identity>`."""


class BadIdentity(ValueError):
    """The identity has characters outside the OCPP identifier set or is too long."""


def check_identity(identity: str) -> None:
    """Raise BadIdentity unless `identity` is a valid OCPP station identity."""
    if not _IDENTITY.fullmatch(identity):
        raise BadIdentity(
            f"station identity must be 1-{MAX_IDENTITY_LENGTH} characters of "
            "A-Z a-z 0-9 * - _ = + | @ ."
        )


def station_id_from_path(path: str) -> str:
    """Return the percent-decoded identity of `/ocpp/<identity>`, or raise BadPath/BadIdentity."""
    route = urlsplit(path).path
    if not route.startswith(OCPP_PATH_PREFIX):
        raise BadPath(f"no OCPP endpoint at {route}; connect to {OCPP_PATH_PREFIX}<stationId>")
    encoded = route[len(OCPP_PATH_PREFIX) :]
    if not encoded or "/" in encoded:
        raise BadPath(f"expected {OCPP_PATH_PREFIX}<stationId>")
    identity = unquote(encoded)
    check_identity(identity)
    return identity
