"""Operator API bearer tokens: random, shown once, stored as SHA-256 (they carry 256 bits)."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

TOKEN_PREFIX = "csms_"  # noqa: S105 (a prefix, not a secret)


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
