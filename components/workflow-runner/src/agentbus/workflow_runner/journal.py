"""Durable steps: each model call, tool call or ``@step`` function is recorded once, then replayed.

A run's workflow function is executed from the top every time a replica takes the
run (first start, after a crash, after an approval). Steps are numbered in the
order the workflow asks for them; step ``n`` has the idempotency key
``<run id>:<n>``. When step ``n`` is already persisted its recorded result is
returned without calling anything; otherwise it executes, and its result is
persisted (KV ``create``: once) before the workflow continues. A tool call passes
the key to ``tools.execute``, so a tool that ran just before a crash (result not yet
persisted here) is replayed by the tool executor, not run again.

An ``@step`` function is **at least once**: a crash (or a lost lease) after its effect
and before its record runs it again on the next attempt. What it changes elsewhere
should take :func:`step_key` (the same on every attempt) as its idempotency key.

:class:`StepJournal` is that machinery for one run; :class:`~.run_context.RunContext`
builds the model and tool steps on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Literal, TypeVar

from pydantic import TypeAdapter

from agentbus.interfaces.catalog.workflows import RunInfo, StepFinished, StepInfo, StepStarted
from agentbus.workflow_runner.errors import Cancelled, LeaseLost, NonDeterministicError, RunFailed
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.store import RunStore, StepConflict, now

T = TypeVar("T")

StepKind = Literal["model", "tool", "function"]
_step_key: ContextVar[str | None] = ContextVar("agentbus_step_key", default=None)


def step_key() -> str | None:
    """The idempotency key of the step executing now (``<run id>:<index>``), the same on
    every attempt of that step; ``None`` outside a step. Pass it on to what a ``@step``
    changes (a payment, an e-mail, another service) so that a repeated attempt is not a
    repeated effect."""
    return _step_key.get()


class StepJournal:
    """The numbered steps of one run: replays what is recorded, executes and records the rest."""

    def __init__(
        self, run: RunInfo, journal: Sequence[StepInfo], *, store: RunStore, events: RunEvents
    ) -> None:
        self.run_id = run.run_id
        self._elapsed_before = run.elapsed_seconds
        self._journal = {step.index: step for step in journal}
        self._next = 0
        self._store = store
        self._events = events
        self._deadline: float | None = None
        self.cancelled = False
        self.executed = 0
        """Steps executed (not replayed) in this attempt."""

    # -- time --------------------------------------------------------------------------

    def set_timeout(self, seconds: float) -> None:
        """Bound the run's running time (time spent waiting for approval does not count)."""
        self._deadline = time.monotonic() + max(0.0, seconds - self._elapsed_before)

    def remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    # -- numbering -----------------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        """Whether the next step is already recorded."""
        return self._next in self._journal

    def key(self, index: int) -> str:
        return f"{self.run_id}:{index}"

    def skip(self) -> None:
        """Use up the next index without a step (a refused tool call keeps its slot, so the
        indices of the steps after it stay stable)."""
        self._next += 1

    # -- steps ---------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        function: Callable[[], Awaitable[T]],
        adapter: TypeAdapter[T],
        *,
        kind: StepKind = "function",
    ) -> T:
        """Run ``function`` as durable step ``name``: recorded once, replayed afterwards."""
        index = self._next
        self._next += 1
        recorded = self._journal.get(index)
        if recorded is not None:
            if recorded.name != name:
                raise NonDeterministicError(
                    "nondeterministic",
                    f"step {index} was recorded as {recorded.name!r} but the workflow now asks "
                    f"for {name!r}: workflows must decide only from their input and step results",
                    index=index,
                )
            return adapter.validate_python(recorded.result)
        return await self._execute(index, name, kind, function, adapter)

    async def _execute(
        self,
        index: int,
        name: str,
        kind: StepKind,
        function: Callable[[], Awaitable[T]],
        adapter: TypeAdapter[T],
    ) -> T:
        if self.cancelled:
            raise Cancelled(self.run_id)
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise RunFailed("timeout", f"the run exceeded its timeout before step {index}")
        started_at, started = now(), time.perf_counter()
        await self._events.emit(self.run_id, StepStarted(index=index, name=name))
        token = _step_key.set(self.key(index))
        try:
            async with asyncio.timeout(remaining):
                value = await function()
        except TimeoutError:
            if self.remaining() is not None and (self.remaining() or 0) <= 0:
                raise RunFailed(
                    "timeout", f"the run exceeded its timeout during step {index} ({name})"
                ) from None
            raise
        finally:
            _step_key.reset(token)
        duration = round((time.perf_counter() - started) * 1000, 3)
        record = StepInfo(
            index=index,
            name=name,
            kind=kind,
            idempotency_key=self.key(index),
            started_at=started_at,
            duration_ms=duration,
            result=adapter.dump_python(value, mode="json"),
        )
        try:
            await self._store.record_step(self.run_id, record)
        except StepConflict:
            raise LeaseLost(self.key(index)) from None
        self.executed += 1
        await self._events.emit(
            self.run_id, StepFinished(index=index, name=name, duration_ms=duration)
        )
        return value
