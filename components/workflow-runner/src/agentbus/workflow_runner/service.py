"""The workflow runner service: the ``workflows.*`` interfaces and the run executor.

Run it with ``agentbus serve agentbus.workflow_runner.service:WorkflowRunner`` (or
``agentbus up``). Any number of replicas share the work: ``workflows.*`` requests go to
any of them (a queue group), runs are taken from the JetStream work queue
(``dispatch.py``), and all state is in KV (``store.py``), so a replica keeps nothing
that another could not pick up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import time
from typing import Any, Literal

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import TypeAdapter, ValidationError

from agentbus.framework import (
    MessageContext,
    RemoteError,
    Service,
    ServiceError,
    handles,
    subscribes,
)
from agentbus.framework.errors import NotConnectedError
from agentbus.framework.events import EventSubscription
from agentbus.interfaces.catalog.tools import (
    APPROVAL_DECIDED,
    APPROVALS_DECIDE,
    Approval,
    DecideRequest,
)
from agentbus.interfaces.catalog.workflows import (
    TERMINAL,
    WORKFLOWS_CANCEL,
    WORKFLOWS_GET,
    WORKFLOWS_LIST,
    WORKFLOWS_RESUME,
    WORKFLOWS_START,
    CancelReply,
    CancelRequest,
    GetReply,
    GetRequest,
    ListRunsReply,
    ListRunsRequest,
    ResumeReply,
    ResumeRequest,
    RunEnded,
    RunError,
    RunInfo,
    RunResumed,
    RunStarted,
    RunSummary,
    StartReply,
    StartRequest,
    WaitingApproval,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.interfaces.metadata import new_id
from agentbus.interfaces.subjects import (
    event_subject,
    run_events_subject,
    workflow_control_subject,
)
from agentbus.workflow_runner import dispatch, retention
from agentbus.workflow_runner.definition import (
    Route,
    StartWorkflow,
    Workflow,
    WorkflowApp,
    load_app,
)
from agentbus.workflow_runner.errors import Cancelled, LeaseLost, RunFailed, Suspended
from agentbus.workflow_runner.presets import presets
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.settings import RunnerSettings
from agentbus.workflow_runner.steps import RunContext, enter, leave
from agentbus.workflow_runner.store import RunStore, now

log = logging.getLogger("agentbus.workflow_runner")

COMPONENT = "workflow-runner"
_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def _validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in e["loc"]) or "(root)", "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)[:20]
    ]


class WorkflowRunner(Service):
    """Executes durable agent workflows: model and tool calls over the bus, step by step."""

    name = COMPONENT
    version = "0.1.0"

    runner_settings: RunnerSettings | None = None
    """Set on a subclass (tests, benchmarks) instead of reading AGENTBUS_RUNNER_*."""
    apps: tuple[WorkflowApp, ...] = ()
    """Workflow apps added on a subclass, besides those named in AGENTBUS_RUNNER_APPS."""
    retention_task: asyncio.Task[None] | None = None
    """The periodic retention sweep (none when retention_seconds is 0)."""

    async def initialize(self) -> None:
        self.options = self.runner_settings or RunnerSettings()
        self.app = WorkflowApp("runner").extend(presets)
        for app in self.apps:
            self.app.extend(app)
        for reference in filter(None, (r.strip() for r in self.options.apps.split(","))):
            self.app.extend(load_app(reference))
        js = self.bus.js
        await dispatch.declare(js, self.settings.jetstream_storage, self.options.events_max_age)
        self.store = await RunStore.open(js)
        self.events = RunEvents(self.bus, self.instance)
        self._running: dict[str, tuple[asyncio.Task[None], RunContext | None]] = {}
        self._stopping = False
        self._control: Subscription = await self.bus.nc.subscribe(
            workflow_control_subject(), cb=self._on_control
        )
        for route in self.app.routes:
            await self._open_route(route)
        self.queue = dispatch.WorkQueue(
            js, self._execute, max_runs=self.options.max_runs, ack_wait=self.options.ack_wait
        )
        await self.queue.start()
        if self.options.retention_seconds > 0:
            self.retention_task = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def shutdown(self) -> None:
        """Stop taking runs; interrupt running ones (they continue elsewhere from their last
        persisted step: their messages are given back at once)."""
        self._stopping = True
        if self.retention_task is not None:
            self.retention_task.cancel()
            await asyncio.wait({self.retention_task})
        await self.queue.stop_intake()
        with contextlib.suppress(Exception):
            await self._control.unsubscribe()
        tasks = [task for task, _ in self._running.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def discovery_metadata(self) -> dict[str, str]:
        metadata = super().discovery_metadata()
        metadata["workflows"] = ",".join(sorted(self.app.workflows))
        return metadata

    # -- workflows.* ---------------------------------------------------------------------

    @handles(WORKFLOWS_START)
    async def start_run(self, request: StartRequest, ctx: MessageContext) -> StartReply:
        return await self.start_workflow(request.workflow, request.input, request.run_id)

    async def start_workflow(
        self, name: str, data: dict[str, Any], run_id: str | None = None
    ) -> StartReply:
        workflow = self._workflow(name)
        try:
            parsed = workflow.parse_input(data)
        except ValidationError as exc:
            problems = _validation_details(exc)
            first = problems[0]
            raise ServiceError(
                ErrorCode.SCHEMA_VIOLATION,
                f"the input does not match {name}'s {workflow.input_model.__name__}: "
                f"{first['loc']}: {first['msg']}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                errors=problems,
                workflow=name,
            ) from None
        stamp = now()
        run = RunInfo(
            run_id=run_id or f"r-{new_id()[:20]}",
            workflow=name,
            status="queued",
            input=parsed.model_dump(mode="json", exclude_unset=True) if data else {},
            created_at=stamp,
            updated_at=stamp,
        )
        stored, created = await self.store.create(run)
        if not created and (stored.workflow != run.workflow or stored.input != run.input):
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"run {run.run_id} exists with another workflow or input; choose a new run id",
                run_id=run.run_id,
            )
        if created or stored.status == "queued":  # again: a crash may have come in between
            await dispatch.dispatch(self.bus.js, stored.run_id, stored.generation)
        return StartReply(
            run_id=stored.run_id,
            status=stored.status,
            events_subject=run_events_subject(stored.run_id),
            created=created,
        )

    def _workflow(self, name: str) -> Workflow:
        workflow = self.app.workflows.get(name)
        if workflow is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"no workflow named {name!r}; this runner has: "
                f"{', '.join(sorted(self.app.workflows))} (add yours with "
                "AGENTBUS_RUNNER_APPS=module:app)",
                workflow=name,
            )
        return workflow

    async def _load(self, run_id: str) -> RunInfo:
        found = await self.store.get(run_id)
        if found is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"no run {run_id}; `agentbus runs list` shows them"
            )
        return found[0]

    @handles(WORKFLOWS_GET)
    async def get_run(self, request: GetRequest, ctx: MessageContext) -> GetReply:
        run = await self._load(request.run_id)
        if request.include_steps:
            run = run.model_copy(update={"steps": await self.store.steps(request.run_id)})
        return GetReply(run=run)

    @handles(WORKFLOWS_LIST)
    async def list_runs(self, request: ListRunsRequest, ctx: MessageContext) -> ListRunsReply:
        runs = [
            r
            for r in await self.store.all()
            if (request.status is None or r.status == request.status)
            and (request.workflow is None or r.workflow == request.workflow)
        ]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return ListRunsReply(
            runs=[
                RunSummary(
                    run_id=r.run_id,
                    workflow=r.workflow,
                    status=r.status,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                    attempts=r.attempts,
                    error=r.error,
                )
                for r in runs[: request.limit]
            ]
        )

    @handles(WORKFLOWS_CANCEL)
    async def cancel_run(self, request: CancelRequest, ctx: MessageContext) -> CancelReply:
        reason = request.reason or f"cancelled by {ctx.metadata.source.component}"
        error = RunError(code="cancelled", message=reason)

        def change(run: RunInfo) -> RunInfo | None:
            if run.status in TERMINAL:
                return None
            if run.status == "running":  # the replica holding it ends it (with this error)
                return run.model_copy(update={"cancel_requested": True, "error": error})
            return run.model_copy(
                update={"status": "cancelled", "cancel_requested": True, "error": error}
            )

        before = await self._load(request.run_id)
        run = await self.store.update(request.run_id, change)
        if run.status == "cancelled" and before.status != "cancelled":
            await self.events.emit(run.run_id, RunEnded(kind="cancelled", error=run.error))
        if run.status == "running":
            with contextlib.suppress(Exception):  # no replica holds it now: cancelled when taken
                await self.bus.nc.request(
                    workflow_control_subject(run.run_id), reason.encode(), timeout=2.0
                )
            deadline = time.monotonic() + 5.0
            while run.status == "running" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                run = await self._load(request.run_id)
        return CancelReply(run_id=run.run_id, status=run.status)

    @handles(WORKFLOWS_RESUME)
    async def resume_run(self, request: ResumeRequest, ctx: MessageContext) -> ResumeReply:
        run = await self._load(request.run_id)
        if run.status == "queued" and not request.decisions:  # dispatch again (de-duplicated)
            await dispatch.dispatch(self.bus.js, run.run_id, run.generation)
        if run.status != "waiting_approval":
            if request.decisions:
                raise ServiceError(
                    ErrorCode.CONFLICT,
                    f"run {run.run_id} is {run.status}: it waits for no approval",
                    status=run.status,
                )
            return ResumeReply(run_id=run.run_id, status=run.status)
        pending = {p.tool_call_id: p for p in run.pending_approvals}
        unknown = sorted(set(request.decisions) - set(pending))
        if unknown:
            raise ServiceError(
                ErrorCode.INVALID,
                f"run {run.run_id} waits for no tool call {', '.join(unknown)}; pending: "
                f"{', '.join(sorted(pending)) or 'none'}",
                pending=sorted(pending),
            )
        decided: dict[str, str] = {}
        for call_id, decision in request.decisions.items():
            approval = pending[call_id].approval_id
            try:
                reply = await ctx.request(
                    APPROVALS_DECIDE,
                    DecideRequest(
                        approval_id=approval,
                        decision=decision,
                        decided_by=request.decided_by,
                        note=request.note,
                    ),
                )
                decided[approval] = reply.approval.status
            except RemoteError as exc:
                if exc.code != ErrorCode.CONFLICT:  # conflict: decided already; fine
                    raise ServiceError(
                        exc.code,
                        f"the tool executor refused the decision on {call_id}: {exc.reply.message}",
                        **exc.details,
                    ) from None
                decided[approval] = str(exc.details.get("status", ""))
        run = await self._record_decisions(run.run_id, decided, force=not request.decisions)
        return ResumeReply(
            run_id=run.run_id, status=run.status, pending_approvals=run.pending_approvals
        )

    async def _record_decisions(
        self, run_id: str, decided: dict[str, str], *, force: bool = False
    ) -> RunInfo:
        """Note decisions on the run's pending approvals; once all are decided (or ``force``),
        queue the run again."""

        def change(run: RunInfo) -> RunInfo | None:
            if run.status != "waiting_approval":
                return None
            pending = [
                p.model_copy(update={"decision": _decision(decided.get(p.approval_id))})
                if p.approval_id in decided and _decision(decided[p.approval_id])
                else p
                for p in run.pending_approvals
            ]
            ready = force or all(p.decision is not None for p in pending)
            return run.model_copy(
                update={"pending_approvals": pending, "status": "queued" if ready else run.status}
            )

        run = await self.store.update(run_id, change)
        if run.status == "queued":
            await dispatch.dispatch(self.bus.js, run.run_id, run.generation)
        return run

    @subscribes(APPROVAL_DECIDED)
    async def on_approval_decided(self, approval: Approval, ctx: MessageContext) -> None:
        """A decision made anywhere (`agentbus approvals approve`) continues the run."""
        run_id = await self.store.run_for_approval(approval.approval_id)
        if run_id is None:
            return
        found = await self.store.get(run_id)
        if found is None:
            return
        run = found[0]
        _, _, index = approval.idempotency_key.rpartition(":")
        parking = run.status == "running" and not any(
            p.approval_id == approval.approval_id for p in run.pending_approvals
        )
        if parking and index.isdigit() and not await self.store.has_step(run_id, int(index)):
            # decided between the executor's answer and the run parking: try again shortly
            raise RuntimeError(f"run {run_id} is parking; the decision is retried shortly")
        await self._record_decisions(run_id, {approval.approval_id: approval.status})

    # -- routes and control --------------------------------------------------------------

    async def _open_route(self, route: Route) -> None:
        async def handle(event: Any, ctx: MessageContext) -> None:
            outcome = route.handler(event)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome is None:
                return
            if not isinstance(outcome, StartWorkflow):
                raise TypeError(f"route {route.name} returned {outcome!r}, not StartWorkflow")
            run_id = (
                outcome.run_id
                or "e-"
                + hashlib.sha256(f"{route.name}:{ctx.metadata.message_id}".encode()).hexdigest()[
                    :24
                ]
            )
            try:
                await self.start_workflow(outcome.workflow, dict(outcome.input), run_id)
            except ServiceError as exc:
                log.error("route %s could not start %s: %s", route.name, outcome.workflow, exc)

        subject = event_subject(route.interface.name, route.interface.version.major)
        subscription = EventSubscription(
            route.interface,
            handle,
            bus=self.bus,
            service=self.name,
            durable=f"{self.queue_group}__route_{route.name}",
            metrics=self.metrics.endpoint(subject),
            max_deliver=self.settings.event_max_deliver,
        )
        await subscription.start()
        self.subscriptions.append(subscription)

    async def _on_control(self, msg: Msg) -> None:
        run_id = msg.subject.rsplit(".", 1)[-1]
        held = self._running.get(run_id)
        if held is None:
            return  # another replica holds it (or none does)
        task, run = held
        if run is not None:
            run.cancelled = True
        task.cancel()
        with contextlib.suppress(Exception):
            await msg.respond(b"cancelling")

    # -- retention -----------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        """Remove runs past the retention now and every retention_sweep_interval."""
        interval = self.options.retention_sweep_interval
        while True:
            try:
                removed = await retention.sweep(self.store, self.options.retention_seconds)
            except Exception as exc:  # the bus is down, the server restarting: next time
                log.warning("the retention sweep failed (%r); next one in %gs", exc, interval)
            else:
                if removed:
                    log.info(
                        "retention: removed %d run(s) and %d step(s) that ended over %gs ago",
                        len(removed),
                        sum(len(r.step_keys) for r in removed),
                        self.options.retention_seconds,
                    )
            await asyncio.sleep(interval)

    # -- executing runs ------------------------------------------------------------------

    async def _execute(self, msg: Msg, order: dispatch.Dispatch) -> None:
        found = await self.store.get(order.run_id)
        if found is None:
            await msg.term()
            return
        run = found[0]
        stale = run.status in TERMINAL or run.status == "waiting_approval"
        # running and delivered for the first time: a duplicate dispatch of a run another
        # replica holds (a crashed holder's own message comes back with num_delivered > 1)
        duplicate = run.status == "running" and msg.metadata.num_delivered == 1
        if stale or duplicate or order.generation != run.generation:
            await msg.ack()
            return
        task = asyncio.current_task()
        assert task is not None
        self._running[run.run_id] = (task, None)
        keep = asyncio.get_running_loop().create_task(
            dispatch.keep_alive(msg, self.options.ack_wait)
        )
        started = time.monotonic()
        token = None
        try:
            if run.cancel_requested:
                await self._end(run.run_id, "cancelled", started, error=_cancelled(run))
                await msg.ack()
                return
            if msg.metadata.num_delivered > self.options.max_deliver:
                error = RunError(
                    code="too_many_tries",
                    message=f"the run was taken {msg.metadata.num_delivered} times without "
                    "finishing (replicas crashing on it?); see the runner logs",
                )
                await self._end(run.run_id, "failed", started, error=error)
                await msg.ack()
                return
            workflow = self.app.workflows.get(run.workflow)
            if workflow is None:
                error = RunError(
                    code="not_found", message=f"this runner has no workflow {run.workflow!r}"
                )
                await self._end(run.run_id, "failed", started, error=error)
                await msg.ack()
                return
            # attempts is counted before any step runs: a run never taken has no steps yet
            first = run.attempts == 0
            journal = [] if first else await self.store.steps(run.run_id)
            run = await self.store.update(
                run.run_id,
                lambda r: r.model_copy(
                    update={
                        "status": "running",
                        "attempts": r.attempts + 1,
                        "replica": self.instance,
                        "pending_approvals": [],
                    }
                ),
            )
            context = RunContext(
                run,
                journal,
                bus=self.bus,
                store=self.store,
                events=self.events,
                settings=self.options,
            )
            self._running[run.run_id] = (task, context)
            if first:
                await self.events.emit(
                    run.run_id, RunStarted(workflow=run.workflow, input=run.input)
                )
            else:
                delivered = msg.metadata.num_delivered
                reason = "approval" if run.generation and delivered == 1 else "redelivery"
                await self.events.emit(
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
            self._running.pop(run.run_id, None)
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _load_quiet(self, run_id: str) -> RunInfo | None:
        found = await self.store.get(run_id)
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
        spent = time.monotonic() - started

        def change(run: RunInfo) -> RunInfo | None:
            if run.status in TERMINAL:
                return None
            return run.model_copy(
                update={
                    "status": status,
                    "result": result,
                    "error": error,
                    "elapsed_seconds": round(run.elapsed_seconds + spent, 3),
                }
            )

        await self.store.update(run_id, change)
        await self.events.emit(run_id, RunEnded(kind=status, result=result, error=error))

    async def _park(self, run_id: str, suspended: Suspended, started: float) -> None:
        spent = time.monotonic() - started

        def change(run: RunInfo) -> RunInfo | None:
            if run.status in TERMINAL:
                return None
            return run.model_copy(
                update={
                    "status": "waiting_approval",
                    "pending_approvals": suspended.pending,
                    "generation": run.generation + 1,
                    "elapsed_seconds": round(run.elapsed_seconds + spent, 3),
                }
            )

        await self.store.update(run_id, change)
        await self.events.emit(run_id, WaitingApproval(pending_approvals=suspended.pending))


def _decision(status: str | None) -> Literal["approved", "denied"] | None:
    if status in ("approved", "executed"):
        return "approved"
    if status == "denied":
        return "denied"
    return None


def _cancelled(run: RunInfo) -> RunError:
    return run.error or RunError(code="cancelled", message="the run was cancelled")
