"""The run executor: takes one dispatched run, executes its workflow, records how it ended.

:class:`RunExecutor` is what the work queue (``dispatch.py``) hands each run message
to. It checks the run is still this dispatch's to take, marks it running, replays and
continues the workflow through a :class:`~.run_context.RunContext`, and ends it as
finished, failed or cancelled, or parks it for approval. It also holds the runs in
progress on this replica, so a cancel request (control subject) and shutdown can
interrupt them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import nats.errors
from nats.aio.msg import Msg
from pydantic import TypeAdapter

from agentbus.framework import Bus, NotConnectedError
from agentbus.interfaces.catalog.workflows import (
    TERMINAL,
    RunEnded,
    RunError,
    RunInfo,
    RunResumed,
    RunStarted,
    WaitingApproval,
)
from agentbus.workflow_runner import dispatch
from agentbus.workflow_runner.definition import WorkflowApp
from agentbus.workflow_runner.errors import Cancelled, LeaseLost, RunFailed, Suspended
from agentbus.workflow_runner.run_context import RunContext, enter, leave
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.settings import RunnerSettings
from agentbus.workflow_runner.store import RunStore

log = logging.getLogger("agentbus.workflow_runner")

_JSON: TypeAdapter[Any] = TypeAdapter(Any)


class RunExecutor:
    """Executes the runs one replica takes; knows which it holds."""

    def __init__(
        self,
        *,
        store: RunStore,
        events: RunEvents,
        bus: Bus,
        app: WorkflowApp,
        options: RunnerSettings,
        replica: str,
    ) -> None:
        self._store = store
        self._events = events
        self._bus = bus
        self._app = app
        self._options = options
        self._replica = replica
        self.running: dict[str, tuple[asyncio.Task[None], RunContext | None]] = {}
        """Runs this replica executes now: the task, and the context once the run started."""
        self._stopping = False

    def cancel_held(self, run_id: str) -> bool:
        """Interrupt the run if this replica holds it (the run then ends as cancelled)."""
        held = self.running.get(run_id)
        if held is None:
            return False  # another replica holds it (or none does)
        task, run = held
        if run is not None:
            run.cancelled = True
        task.cancel()
        return True

    async def stop(self) -> None:
        """Interrupt every run in progress; each continues elsewhere from its last persisted
        step (its message is given back at once)."""
        self._stopping = True
        tasks = [task for task, _ in self.running.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    async def execute(self, msg: Msg, order: dispatch.Dispatch) -> None:
        """Execute the dispatched run; acknowledge (or give back) its message."""
        found = await self._store.get(order.run_id)
        if found is None:
            await msg.term()
            return
        run = found[0]
        held = self.running.get(run.run_id)
        if held is not None:
            await self._follow(held[0], msg, run.run_id)
            return
        stale = run.status in TERMINAL or run.status == "waiting_approval"
        # running and delivered for the first time: a duplicate dispatch of a run another
        # replica holds (a crashed holder's own message comes back with num_delivered > 1)
        duplicate = run.status == "running" and msg.metadata.num_delivered == 1
        if stale or duplicate or order.generation != run.generation:
            await msg.ack()
            return
        task = asyncio.current_task()
        assert task is not None
        self.running[run.run_id] = (task, None)
        keep = asyncio.get_running_loop().create_task(
            dispatch.keep_alive(msg, self._options.ack_wait)
        )
        started = time.monotonic()
        token = None
        try:
            if run.cancel_requested:
                await self._end(run.run_id, "cancelled", started, error=_cancelled(run))
                await msg.ack()
                return
            if msg.metadata.num_delivered > self._options.max_deliver:
                error = RunError(
                    code="too_many_tries",
                    message=f"the run was taken {msg.metadata.num_delivered} times without "
                    "finishing (replicas crashing on it?); see the runner logs",
                )
                await self._end(run.run_id, "failed", started, error=error)
                await msg.ack()
                return
            workflow = self._app.workflows.get(run.workflow)
            if workflow is None:
                error = RunError(
                    code="not_found", message=f"this runner has no workflow {run.workflow!r}"
                )
                await self._end(run.run_id, "failed", started, error=error)
                await msg.ack()
                return
            # attempts is counted before any step runs: a run never taken has no steps yet
            first = run.attempts == 0
            journal = [] if first else await self._store.steps(run.run_id)
            run = await self._store.update(
                run.run_id,
                lambda r: r.model_copy(
                    update={
                        "status": "running",
                        "attempts": r.attempts + 1,
                        "replica": self._replica,
                        "pending_approvals": [],
                    }
                ),
            )
            context = RunContext(
                run,
                journal,
                bus=self._bus,
                store=self._store,
                events=self._events,
                settings=self._options,
            )
            self.running[run.run_id] = (task, context)
            if first:
                await self._events.emit(
                    run.run_id, RunStarted(workflow=run.workflow, input=run.input)
                )
            else:
                delivered = msg.metadata.num_delivered
                reason = "approval" if run.generation and delivered == 1 else "redelivery"
                await self._events.emit(
                    run.run_id, RunResumed(reason=reason, replayed_steps=len(journal))
                )
            token = enter(context)
            result = await workflow.function(context, workflow.parse_input(run.input))
            await self._end(
                run.run_id, "finished", started, result=_JSON.dump_python(result, mode="json")
            )
        except Suspended as suspended:
            await self._park(run.run_id, suspended, started)
        except RunFailed as failed:
            await self._end(run.run_id, "failed", started, error=failed.to_error())
        except LeaseLost:
            # another replica holds the run (with its own delivery): leave it to that one
            log.warning("run %s is recorded by another replica; leaving it", run.run_id)
        except (Cancelled, asyncio.CancelledError):
            current = await self._load_quiet(run.run_id)
            if current is not None and (current.cancel_requested or current.status in TERMINAL):
                if current.status not in TERMINAL:
                    await self._end(run.run_id, "cancelled", started, error=_cancelled(current))
                task.uncancel()
            elif self._stopping:
                with contextlib.suppress(Exception):
                    await msg.nak()  # another replica continues it now
                raise
            else:
                raise
        except (nats.errors.Error, NotConnectedError) as exc:
            # the bus, not the workflow: leave the run as it is and take it again shortly
            log.warning("run %s interrupted by %r; it will be taken again", run.run_id, exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
            return
        except Exception as exc:
            log.exception("run %s failed in %s", run.run_id, run.workflow)
            error = RunError(
                code="internal",
                message=f"the workflow raised {type(exc).__name__}: {exc}",
                details={"exception": type(exc).__name__},
            )
            await self._end(run.run_id, "failed", started, error=error)
        finally:
            if token is not None:
                leave(token)
            keep.cancel()
            self.running.pop(run.run_id, None)
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _follow(self, execution: asyncio.Task[None], msg: Msg, run_id: str) -> None:
        """A new delivery of a run this replica is still executing (its lease lapsed while
        NATS was out, and JetStream gave the run again; here, as the only replica, or to us
        again): hold the new delivery's lease while the execution goes on instead of
        starting the run a second time, then settle it as the execution ended."""
        log.info("run %s came again while this replica still executes it; following it", run_id)
        keep = asyncio.get_running_loop().create_task(
            dispatch.keep_alive(msg, self._options.ack_wait)
        )
        try:
            await asyncio.wait({execution})
        finally:
            keep.cancel()
        with contextlib.suppress(Exception):
            current = await self._load_quiet(run_id)
            if (
                current is None
                or current.status in TERMINAL
                or current.status == "waiting_approval"
            ):
                await msg.ack()
                return
        with contextlib.suppress(Exception):  # interrupted (a stop, the bus): taken again
            await msg.nak()

    async def _load_quiet(self, run_id: str) -> RunInfo | None:
        found = await self._store.get(run_id)
        return found[0] if found else None

    async def _end(
        self,
        run_id: str,
        status: Literal["finished", "failed", "cancelled"],
        started: float,
        *,
        result: Any = None,
        error: RunError | None = None,
    ) -> None:
        await self._settle(
            run_id, started, lambda run: {"status": status, "result": result, "error": error}
        )
        await self._events.emit(run_id, RunEnded(kind=status, result=result, error=error))

    async def _park(self, run_id: str, suspended: Suspended, started: float) -> None:
        await self._settle(
            run_id,
            started,
            lambda run: {
                "status": "waiting_approval",
                "pending_approvals": suspended.pending,
                "generation": run.generation + 1,
            },
        )
        await self._events.emit(run_id, WaitingApproval(pending_approvals=suspended.pending))

    async def _settle(
        self, run_id: str, started: float, changes: Callable[[RunInfo], dict[str, Any]]
    ) -> None:
        """Record how this attempt left the run (unless it ended meanwhile) and its time."""
        spent = time.monotonic() - started

        def change(run: RunInfo) -> RunInfo | None:
            if run.status in TERMINAL:
                return None
            elapsed = round(run.elapsed_seconds + spent, 3)
            return run.model_copy(update={**changes(run), "elapsed_seconds": elapsed})

        await self._store.update(run_id, change)


def _cancelled(run: RunInfo) -> RunError:
    return run.error or RunError(code="cancelled", message="the run was cancelled")
