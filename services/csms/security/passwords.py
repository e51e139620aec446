"""Station Basic-auth passwords (OCPP 2.0.1 SecurityCtrlr.BasicAuthPassword: 16-40 characters).

Stored only as salted argon2id hashes. Verification is deliberately slow, so callers run it off
the event loop and cache successes (see the gateway's admission).
"""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 16
MAX_PASSWORD_LENGTH = 40
_GENERATED_LENGTH = 32
_ALPHABET = string.ascii_letters + string.digits

# OWASP's argon2id minimum: 19 MiB, 2 iterations; about 40 ms per check on a small server.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class BadPassword(ValueError):
    """Not 16-40 characters."""


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadPassword(
            f"password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters"
        )


def generate_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_GENERATED_LENGTH))


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
