"""Waiting for what becomes true shortly (the worker writes after the broker confirmed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 10.0
) -> T:
    """Call `probe` until `check` holds on its result; fail with the last result otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if check(result):
            return result
        if asyncio.get_running_loop().time() > deadline:
            shown = result.text if hasattr(result, "text") else repr(result)
            raise AssertionError(f"still not true after {timeout} s: {shown}")
        await asyncio.sleep(0.1)
