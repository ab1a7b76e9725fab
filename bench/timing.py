"""Timing helpers shared by the benchmarks (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Call = Callable[[], Awaitable[object]]


async def timed(call: Call, count: int) -> list[float]:
    """Latencies in seconds of ``count`` sequential calls."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    return latencies


async def throughput(call: Call, total: int, in_flight: int) -> float:
    """Calls per second with ``in_flight`` calls outstanding at all times."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return total / (time.perf_counter() - started)


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
