"""Concurrency slots and the bounded queue in front of them: how many requests a service
handles at once, how many wait, and what becomes of the others.

Intake never waits, so the subscription that delivers messages is never held up by slow
handlers (nats-py would otherwise pile them up in its own unbounded pending queue): a
request starts at once when a slot is free, waits in the queue when none is, and is
refused when the queue is full too (the endpoint answers ``overloaded`` at once). A queued
request whose caller stopped waiting (its deadline passed) is dropped when it would start:
no handler runs for an answer nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from agentbus.interfaces.error_reply import ErrorReply

FIRST_GUESS = 0.05
"""Seconds per request assumed for the retry-after hint before any request finished."""
SHORTEST_HINT = 0.01
LONGEST_HINT = 30.0
SETTLE = 0.5
"""Seconds given to cancelled handlers and refused requests to send their replies."""


class Job(Protocol):
    """One received request, as the slots see it."""

    deadline: float | None
    """``time.monotonic()`` after which its caller no longer waits; ``None``: no deadline."""

    def run(self) -> Coroutine[Any, Any, None]:
        """Handle it and reply."""

    def expired(self) -> None:
        """Count it as dropped: its caller gave up before it got a slot."""

    def refuse(self, reply: ErrorReply) -> Coroutine[Any, Any, None]:
        """Answer it with ``reply`` without running its handler."""


class Slots:
    """At most ``limit`` requests handled at once and ``max_queue`` waiting, shared by a
    service's endpoints; ``tasks`` are the running handlers."""

    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.tasks: set[asyncio.Task[None]] = set()
        self._queue: deque[Job] = deque()
        self._replies: set[asyncio.Task[None]] = set()  # refusals being sent
        self._seconds_per_job = 0.0  # moving average of handler time
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False
        """Set at shutdown once the grace is over: nothing starts any more."""

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def admit(self, job: Job) -> bool:
        """Start ``job`` or queue it; ``False`` when it was refused (full, or closed)."""
        if self.closed:
            return False
        if len(self.tasks) < self.limit and not self._queue:
            self._start(job)
            return True
        if len(self._queue) >= self.max_queue:
            self._drop_expired_head(time.monotonic())
            if len(self._queue) >= self.max_queue:
                return False
        self._queue.append(job)
        self._idle.clear()
        return True

    def retry_after(self) -> float:
        """A hint for a refused caller: about when the queue will have drained at the pace
        requests finish now (each refused caller adds its own jitter)."""
        per_job = self._seconds_per_job or FIRST_GUESS
        hint = per_job * (len(self._queue) + 1) / self.limit
        return round(min(max(hint, SHORTEST_HINT), LONGEST_HINT), 3)

    def _start(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job))
        self.tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    async def _run(self, job: Job) -> None:
        started = time.monotonic()
        try:
            await job.run()
        finally:
            took = time.monotonic() - started
            self._seconds_per_job = (
                took if not self._seconds_per_job else 0.9 * self._seconds_per_job + 0.1 * took
            )

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.closed:
            self._start_queued()
        if not self.tasks and not self._queue:
            self._idle.set()

    def _start_queued(self) -> None:
        now = time.monotonic()
        while self._queue and len(self.tasks) < self.limit:
            job = self._queue.popleft()
            if job.deadline is not None and job.deadline <= now:
                job.expired()
                continue
            self._start(job)

    def _drop_expired_head(self, now: float) -> None:
        """Drop expired requests at the head of the queue (where the oldest wait), so that
        callers who gave up do not take the places of new ones."""
        while self._queue:
            deadline = self._queue[0].deadline
            if deadline is None or deadline > now:
                return
            self._queue.popleft().expired()

    def cancel_all(self, refusal: ErrorReply) -> tuple[int, int]:
        """Answer every queued request with ``refusal`` and cancel every running handler
        (each answers ``unavailable``). Returns (refused, cancelled)."""
        refused = len(self._queue)
        loop = asyncio.get_running_loop()
        while self._queue:
            reply = loop.create_task(self._queue.popleft().refuse(refusal))
            self._replies.add(reply)
            reply.add_done_callback(self._replies.discard)
        running = list(self.tasks)
        for task in running:
            task.cancel()
        if not self.tasks:
            self._idle.set()
        return refused, len(running)

    async def close(self, grace: float, refusal: ErrorReply) -> tuple[int, int]:
        """Let running and queued requests finish within ``grace`` seconds; then refuse
        what is still queued with ``refusal``, cancel what still runs, and give their
        replies up to :data:`SETTLE` seconds. Returns (refused, cancelled)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        self.closed = True
        refused, cancelled = self.cancel_all(refusal)
        pending = self.tasks | self._replies
        if pending:
            await asyncio.wait(pending, timeout=SETTLE)
        return refused, cancelled
