"""The workflow runner service: the bus adapter over the run operations and the executor.

Run it with ``agentbus serve agentbus.workflow_runner.service:WorkflowRunner`` (or
``agentbus up``). Any number of replicas share the work: ``workflows.*`` requests go to
any of them (a queue group), runs are taken from the JetStream work queue
(``dispatch.py``), and all state is in KV (``store.py``), so a replica keeps nothing
that another could not pick up.

The handlers here decode and encode; what they do is in ``runs.py`` (the ``workflows.*``
operations), ``executor.py`` (executing a taken run), ``routes.py`` (events that start
runs) and ``retention.py`` (the periodic sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from agentbus.framework import EVENTS, MessageContext, Service, Settings, handles, subscribes
from agentbus.framework.auth import Grants, grants
from agentbus.interfaces.catalog.model import CATALOG, GENERATE, STREAM
from agentbus.interfaces.catalog.tools import (
    APPROVAL_DECIDED,
    APPROVALS_WITHDRAW,
    TOOLS_EXECUTE,
    TOOLS_LIST,
    Approval,
)
from agentbus.interfaces.catalog.workflows import (
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
    StartReply,
    StartRequest,
)
from agentbus.interfaces.subjects import (
    runs_wildcard,
    workflow_control_subject,
    workflow_dispatch_subject,
)
from agentbus.workflow_runner import dispatch, retention, routes
from agentbus.workflow_runner.definition import WorkflowApp, load_app
from agentbus.workflow_runner.executor import RunExecutor
from agentbus.workflow_runner.presets import presets
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.runs import Runs
from agentbus.workflow_runner.settings import RunnerSettings
from agentbus.workflow_runner.store import BUCKET as RUNS_BUCKET
from agentbus.workflow_runner.store import STREAM as RUNS_STREAM
from agentbus.workflow_runner.store import RunStore

COMPONENT = "workflow-runner"


class WorkflowRunner(Service):
    """Executes durable agent workflows: model and tool calls over the bus, step by step."""

    name = COMPONENT
    uses = (GENERATE, STREAM, CATALOG, TOOLS_LIST, TOOLS_EXECUTE, APPROVALS_WITHDRAW)
    """No ``tools.approvals.decide``: the tool calls of runs are the runner's own, so
    approvals are decided by the operator (``agentbus runs resume`` decides, then resumes)."""
    version = "0.1.0"

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> Grants:
        """The run store, the work queue and its consumer, run events, the control subject
        replicas answer each other on, and one durable per event route of the apps that
        ``AGENTBUS_RUNNER_APPS`` names in ``environment``."""
        needs = (
            grants.write_bucket(RUNS_BUCKET)
            | grants.create_stream(dispatch.QUEUE.name)
            | grants.create_stream(dispatch.EVENTS_STREAM)
            | grants.consume(dispatch.QUEUE.name, dispatch.CONSUMER)
            | grants.publish(
                workflow_dispatch_subject(),
                runs_wildcard(),
                workflow_control_subject(),
                f"{grants.JS_API}.STREAM.PURGE.{RUNS_STREAM}",  # retention of finished runs
                f"{grants.JS_API}.STREAM.INFO.{dispatch.EVENTS_STREAM}",
            )
            | grants.subscribe(workflow_control_subject())
            | grants.read_stream(dispatch.EVENTS_STREAM)
        )
        needs = needs | Grants.of(responses=True)  # control requests between replicas
        app = WorkflowApp("grants")
        references = environment.get("AGENTBUS_RUNNER_APPS", "")
        for reference in filter(None, (r.strip() for r in references.split(","))):
            app.extend(load_app(reference))
        for route in app.routes:
            needs |= grants.consume(EVENTS.name, routes.durable_name(name, route))
        return needs

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        options: RunnerSettings | None = None,
        apps: Sequence[WorkflowApp] = (),
        **service_kwargs: Any,
    ) -> None:
        """``options`` default to ``AGENTBUS_RUNNER_*``; ``apps`` are added to the presets and
        to the apps named in ``AGENTBUS_RUNNER_APPS``."""
        super().__init__(settings, **service_kwargs)
        self.options = options or RunnerSettings()
        self.app = WorkflowApp("runner").extend(presets)
        for app in apps:
            self.app.extend(app)
        for reference in filter(None, (r.strip() for r in self.options.apps.split(","))):
            self.app.extend(load_app(reference))
        self.retention_task: asyncio.Task[None] | None = None
        """The periodic retention sweep (none when retention_seconds is 0)."""

    async def initialize(self) -> None:
        js = self.bus.js
        await dispatch.declare(js, self.settings.jetstream_storage, self.options.events_max_age)
        self.store = await RunStore.open(js)
        self.events = RunEvents(self.bus, self.instance)
        self.runs = Runs(store=self.store, events=self.events, bus=self.bus, app=self.app)
        self.executor = RunExecutor(
            store=self.store,
            events=self.events,
            bus=self.bus,
            app=self.app,
            options=self.options,
            replica=self.instance,
        )
        self._control: Subscription = await self.bus.subscribe_raw(
            workflow_control_subject(), self._on_control
        )
        for route in self.app.routes:
            await self.subscribe(
                route.interface,
                routes.event_handler(route, self.runs.start),
                durable=routes.durable_name(self.queue_group, route),
            )
        self.queue = dispatch.WorkQueue(
            js,
            self.executor.execute,
            max_runs=self.options.max_runs,
            ack_wait=self.options.ack_wait,
        )
        await self.queue.start()
        if self.options.retention_seconds > 0:
            self.retention_task = asyncio.get_running_loop().create_task(
                retention.sweep_forever(
                    self.store,
                    self.options.retention_seconds,
                    self.options.retention_sweep_interval,
                )
            )

    async def shutdown(self) -> None:
        """Stop taking runs; interrupt running ones (they continue elsewhere from their last
        persisted step: their messages are given back at once)."""
        if self.retention_task is not None:
            self.retention_task.cancel()
            await asyncio.wait({self.retention_task})
        await self.queue.stop_intake()
        with contextlib.suppress(Exception):
            await self._control.unsubscribe()
        await self.executor.stop()

    def discovery_metadata(self) -> dict[str, str]:
        metadata = super().discovery_metadata()
        metadata["workflows"] = ",".join(sorted(self.app.workflows))
        return metadata

    # -- workflows.* ---------------------------------------------------------------------

    @handles(WORKFLOWS_START)
    async def start_run(self, request: StartRequest, ctx: MessageContext) -> StartReply:
        return await self.runs.start(request.workflow, request.input, request.run_id)

    @handles(WORKFLOWS_GET)
    async def get_run(self, request: GetRequest, ctx: MessageContext) -> GetReply:
        return await self.runs.get(request)

    @handles(WORKFLOWS_LIST)
    async def list_runs(self, request: ListRunsRequest, ctx: MessageContext) -> ListRunsReply:
        return await self.runs.list_runs(request)

    @handles(WORKFLOWS_CANCEL)
    async def cancel_run(self, request: CancelRequest, ctx: MessageContext) -> CancelReply:
        return await self.runs.cancel(request, requested_by=ctx.caller)

    @handles(WORKFLOWS_RESUME)
    async def resume_run(self, request: ResumeRequest, ctx: MessageContext) -> ResumeReply:
        return await self.runs.resume(request)

    @subscribes(APPROVAL_DECIDED)
    async def on_approval_decided(self, approval: Approval, ctx: MessageContext) -> None:
        """A decision made anywhere (`agentbus approvals approve`) continues the run."""
        await self.runs.approval_decided(approval)

    # -- control -------------------------------------------------------------------------

    async def _on_control(self, msg: Msg) -> None:
        """``workflows.cancel`` of a running run: the replica holding it interrupts it."""
        if self.executor.cancel_held(msg.subject.rsplit(".", 1)[-1]):
            with contextlib.suppress(Exception):
                await msg.respond(b"cancelling")
