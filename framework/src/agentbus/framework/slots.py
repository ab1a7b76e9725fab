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
        self._started: dict[asyncio.Task[None], float] = {}  # when each running task began
        self._queue: deque[tuple[float, int, Job]] = deque()  # (queued at, place, job)
        self._replies: set[asyncio.Task[None]] = set()  # refusals being sent
        self._seconds_per_job = 0.0  # moving average of handler time
        self._seconds_per_place = 0.0  # moving average of the wait for a slot per place
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
        """Start ``job`` or queue it; ``False`` when it was refused: the queue is full, the
        job's caller would give up before its turn comes, or the slots are closed."""
        if self.closed:
            return False
        if len(self.tasks) < self.limit and not self._queue:
            self._start(job)
            return True
        now = time.monotonic()
        if len(self._queue) >= self.max_queue:
            self._drop_expired_head(now)
            if len(self._queue) >= self.max_queue:
                return False
        if job.deadline is not None and job.deadline - now < self._wait(now):
            return False  # it would expire in the queue: say so now, not by silence
        self._queue.append((now, len(self._queue), job))
        self._idle.clear()
        return True

    def retry_after(self) -> float:
        """A hint for a refused caller: about how long a request waits for a slot now.
        Each refused caller adds its own jitter."""
        return round(min(max(self._wait(time.monotonic()), SHORTEST_HINT), LONGEST_HINT), 3)

    def _wait(self, now: float) -> float:
        """How long a request queued now will wait for a slot, about: what the last ones
        waited per place ahead of them, times its places, and at least what the oldest
        queued one has waited so far; with nothing queued, until a slot frees."""
        if self._queue:
            by_place = self._seconds_per_place * (len(self._queue) + 1)
            return max(by_place, now - self._queue[0][0])
        per_job = self._seconds_per_job or now - min(self._started.values(), default=now)
        return per_job / self.limit

    def _start(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(job.run())
        self.tasks.add(task)
        self._started[task] = time.monotonic()
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._seconds_per_job = _average(
            self._seconds_per_job, time.monotonic() - self._started.pop(task)
        )
        if not self.closed:
            self._start_queued()
        if not self.tasks and not self._queue:
            self._idle.set()

    def _start_queued(self) -> None:
        now = time.monotonic()
        while self._queue and len(self.tasks) < self.limit:
            queued_at, place, job = self._queue.popleft()
            if job.deadline is not None and job.deadline <= now:
                job.expired()
                continue
            self._seconds_per_place = _average(
                self._seconds_per_place, (now - queued_at) / (place + 1)
            )
            self._start(job)

    def _drop_expired_head(self, now: float) -> None:
        """Drop expired requests at the head of the queue (where the oldest wait), so that
        callers who gave up do not take the places of new ones."""
        while self._queue:
            deadline = self._queue[0][2].deadline
            if deadline is None or deadline > now:
                return
            self._queue.popleft()[2].expired()

    def cancel_all(self, refusal: ErrorReply) -> tuple[int, int]:
        """Answer every queued request with ``refusal`` and cancel every running handler
        (each answers ``unavailable``). Returns (refused, cancelled)."""
        refused = len(self._queue)
        loop = asyncio.get_running_loop()
        while self._queue:
            reply = loop.create_task(self._queue.popleft()[2].refuse(refusal))
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


def _average(average: float, sample: float) -> float:
    """A moving average that follows the last few dozen samples (the first one as is)."""
    return sample if not average else 0.9 * average + 0.1 * sample
