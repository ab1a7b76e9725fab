"""Concurrency slots: how many requests a service handles at once, and its in-flight tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Slots:
    """Concurrency slots shared by a service's endpoints, and its in-flight tasks."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self.tasks: set[asyncio.Task[None]] = set()

    async def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        await self._semaphore.acquire()
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._semaphore.release()

    def __len__(self) -> int:
        return len(self.tasks)

    async def wait(self, timeout: float) -> int:
        """Wait for in-flight work; cancel what is left after ``timeout``. Returns cancelled."""
        pending = set(self.tasks)
        if not pending:
            return 0
        _done, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=1.0)
        return len(still)
