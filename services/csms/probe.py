"""A dependency-free HTTP health probe for container health checks."""

from __future__ import annotations

import urllib.error
import urllib.request


def probe(url: str, timeout: float) -> bool:
    """True when GET url answers 200."""
    if not url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
