"""Waiting for something that happens on the bus, with a deadline that says what it was."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``check`` (sync or async) until it returns a truthy value, and return that value.

    An exception raised by ``check`` counts as "not yet". After ``timeout`` seconds an
    ``AssertionError`` names ``what`` and the last value (or exception) seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            error, result = exc, None
        if result:
            return result
        if time.monotonic() >= deadline:
            last = f"last error: {error!r}" if error is not None else f"last value: {result!r}"
            raise AssertionError(f"waited {timeout:g}s for {what}; {last}") from error
        await asyncio.sleep(interval)
