"""The ``workflows.*`` operations: start, get, list, cancel and resume runs; continue a run
when its approvals are decided.

:class:`Runs` works on the run records (``store.py``) and the work queue
(``dispatch.py``); the service only decodes requests and encodes replies. Every
operation is safe on any replica: the records are the state, and dispatches are
de-duplicated per run and generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

from pydantic import ValidationError

from agentbus.framework import Bus, BusError, RemoteError, ServiceError
from agentbus.interfaces.catalog.tools import APPROVALS_WITHDRAW, Approval, WithdrawRequest
from agentbus.interfaces.catalog.workflows import (
    TERMINAL,
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
    RunSummary,
    StartReply,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.interfaces.metadata import new_id
from agentbus.interfaces.subjects import run_events_subject, workflow_control_subject
from agentbus.interfaces.validation import schema_violation
from agentbus.workflow_runner import dispatch
from agentbus.workflow_runner.deciding import REFUSED
from agentbus.workflow_runner.definition import Workflow, WorkflowApp
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.store import RunStore, now

log = logging.getLogger(__name__)


class Runs:
    """The run operations of the ``workflows.*`` interfaces, on any replica."""

    def __init__(self, *, store: RunStore, events: RunEvents, bus: Bus, app: WorkflowApp) -> None:
        self._store = store
        self._events = events
        self._bus = bus
        self._app = app

    # -- start ---------------------------------------------------------------------------

    async def start(self, name: str, data: dict[str, Any], run_id: str | None = None) -> StartReply:
        """Create the run (or find the same one) and queue it; refuses invalid input."""
        workflow = self._workflow(name)
        try:
            parsed = workflow.parse_input(data)
        except ValidationError as exc:
            reply = schema_violation(
                exc,
                f"the input does not match {name}'s {workflow.input_model.__name__}",
                workflow=name,
            )
            raise ServiceError(reply.code, reply.message, **reply.details) from None
        stamp = now()
        run = RunInfo(
            run_id=run_id or f"r-{new_id()[:20]}",
            workflow=name,
            status="queued",
            input=parsed.model_dump(mode="json", exclude_unset=True) if data else {},
            created_at=stamp,
            updated_at=stamp,
        )
        stored, created = await self._store.create(run)
        if not created and (stored.workflow != run.workflow or stored.input != run.input):
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"run {run.run_id} exists with another workflow or input; choose a new run id",
                run_id=run.run_id,
            )
        if created or stored.status == "queued":  # again: a crash may have come in between
            await dispatch.dispatch(self._bus.js, stored.run_id, stored.generation)
        return StartReply(
            run_id=stored.run_id,
            status=stored.status,
            events_subject=run_events_subject(stored.run_id),
            created=created,
        )

    def _workflow(self, name: str) -> Workflow:
        workflow = self._app.workflows.get(name)
        if workflow is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"no workflow named {name!r}; this runner has: "
                f"{', '.join(sorted(self._app.workflows))} (add yours with "
                "AGENTBUS_RUNNER_APPS=module:app)",
                workflow=name,
            )
        return workflow

    # -- reading -------------------------------------------------------------------------

    async def _load(self, run_id: str) -> RunInfo:
        found = await self._store.get(run_id)
        if found is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"no run {run_id}; `agentbus runs list` shows them"
            )
        return found[0]

    async def get(self, request: GetRequest) -> GetReply:
        run = await self._load(request.run_id)
        if request.include_steps:
            run = run.model_copy(update={"steps": await self._store.steps(request.run_id)})
        return GetReply(run=run)

    async def list_runs(self, request: ListRunsRequest) -> ListRunsReply:
        runs = [
            r
            for r in await self._store.all()
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

    # -- cancel --------------------------------------------------------------------------

    async def cancel(self, request: CancelRequest, *, requested_by: str) -> CancelReply:
        """Cancel a run; a running one is interrupted by the replica holding it (control
        subject), and this waits up to 5 s for it to end."""
        reason = request.reason or f"cancelled by {requested_by}"
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
        run = await self._store.update(request.run_id, change)
        if run.status == "cancelled" and before.status != "cancelled":
            await self._events.emit(run.run_id, RunEnded(kind="cancelled", error=run.error))
            await self._withdraw(run, reason)
        if run.status == "running":
            with contextlib.suppress(Exception):  # no replica holds it now: cancelled when taken
                await self._bus.request_raw(
                    workflow_control_subject(run.run_id), reason.encode(), timeout=2.0
                )
            deadline = time.monotonic() + 5.0
            while run.status == "running" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                run = await self._load(request.run_id)
        return CancelReply(run_id=run.run_id, status=run.status)

    # -- approvals -----------------------------------------------------------------------

    async def _withdraw(self, run: RunInfo, reason: str) -> None:
        """Take back a cancelled run's pending approvals at the executor (denied, with the
        reason), so that approving one later is refused rather than silently doing nothing.
        Best effort: an executor that does not answer leaves them pending (logged)."""
        for pending in run.pending_approvals:
            if pending.decision is not None:
                continue
            request = WithdrawRequest(
                approval_id=pending.approval_id, reason=f"run {run.run_id}: {reason}"[:500]
            )
            try:
                await self._bus.request(APPROVALS_WITHDRAW, request, timeout=5.0)
            except RemoteError as exc:
                if exc.code != ErrorCode.CONFLICT:  # decided meanwhile: nothing to take back
                    log.warning("could not withdraw approval %s: %s", pending.approval_id, exc)
            except BusError as exc:
                log.warning("could not withdraw approval %s: %s", pending.approval_id, exc)

    async def resume(self, request: ResumeRequest) -> ResumeReply:
        """Queue a waiting run again (a run queued already is dispatched again, de-duplicated).

        Decisions are refused (``deciding.REFUSED``): approvals are decided at the tool
        executor by someone other than the runner, and their event continues the run."""
        if request.decisions:
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                REFUSED.format(run_id=request.run_id),
                decide_with="tools.approvals.decide",
            )
        run = await self._load(request.run_id)
        if run.status == "queued":  # dispatch again (de-duplicated)
            await dispatch.dispatch(self._bus.js, run.run_id, run.generation)
        if run.status != "waiting_approval":
            return ResumeReply(run_id=run.run_id, status=run.status)
        run = await self._record_decisions(run.run_id, {}, force=True)
        return ResumeReply(
            run_id=run.run_id, status=run.status, pending_approvals=run.pending_approvals
        )

    async def approval_decided(self, approval: Approval) -> None:
        """A decision made anywhere (`agentbus approvals approve`) continues the run.

        Raises (so the event comes again) while the run is still parking on it."""
        run_id = await self._store.run_for_approval(approval.approval_id)
        if run_id is None:
            return
        found = await self._store.get(run_id)
        if found is None:
            return
        run = found[0]
        _, _, index = approval.idempotency_key.rpartition(":")
        parking = run.status == "running" and not any(
            p.approval_id == approval.approval_id for p in run.pending_approvals
        )
        if parking and index.isdigit() and not await self._store.has_step(run_id, int(index)):
            # decided between the executor's answer and the run parking: try again shortly
            raise RuntimeError(f"run {run_id} is parking; the decision is retried shortly")
        await self._record_decisions(run_id, {approval.approval_id: approval.status})

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

        run = await self._store.update(run_id, change)
        if run.status == "queued":
            await dispatch.dispatch(self._bus.js, run.run_id, run.generation)
        return run


def _decision(status: str | None) -> Literal["approved", "denied"] | None:
    if status in ("approved", "executed"):
        return "approved"
    if status == "denied":
        return "denied"
    return None
