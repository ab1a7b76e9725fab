"""An approved breaking change with a model configured: the maintainer starts a code-change
workflow restricted to a worktree's component folder, then tests both versions and promotes.

The workflow runner here is a stand-in that serves ``workflows.start`` / ``workflows.get``
and edits the given root the way a tool loop would; the real runner is another component.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from maintainer_helpers import Decisions, MakeSample, StartMaintainer, escalation_in, wait_until

from agentbus.framework import Bus, MessageContext, Service, Settings, handles
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_GET,
    WORKFLOWS_START,
    GetReply,
    GetRequest,
    RunInfo,
    StartReply,
    StartRequest,
)
from agentbus.maintainer.deployers import current_deployment
from agentbus.maintainer.escalations import EscalationStore
from agentbus.model_gateway.testing import FakeModelGateway

NEW_MODULE = '"""Reads model.catalog 2.0.0."""\n\nCATALOG_VERSION = "2.0.0"\n'


class StandInRunner(Service):
    """Runs workflow ``code-change`` at once: writes one module under the given root."""

    name = "stand-in-workflow-runner"
    version = "0.1.0"

    async def initialize(self) -> None:
        self.runs: dict[str, RunInfo] = {}
        self.roots: list[Path] = []

    @handles(WORKFLOWS_START)
    async def start_run(self, request: StartRequest, ctx: MessageContext) -> StartReply:
        root = Path(str(request.input["root"]))
        self.roots.append(root)
        (root / "src" / "sample_greeter" / "catalog_v2.py").write_text(NEW_MODULE)
        now = datetime.now(UTC).isoformat()
        run_id = request.run_id or "run"
        self.runs[run_id] = RunInfo(
            run_id=run_id,
            workflow=request.workflow,
            status="finished",
            input=request.input,
            created_at=now,
            updated_at=now,
            result="added catalog_v2.py",
        )
        return StartReply(run_id=run_id, status="queued", events_subject=f"agentbus.runs.{run_id}")

    @handles(WORKFLOWS_GET)
    async def get_run(self, request: GetRequest, ctx: MessageContext) -> GetReply:
        return GetReply(run=self.runs[request.run_id])


async def test_an_approved_breaking_change_runs_a_code_change_workflow_then_promotes(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, settings: Settings
) -> None:
    component = make_sample()
    name = component.name
    model = FakeModelGateway(settings)
    runner = StandInRunner(settings)
    await model.start()
    await runner.start()
    try:
        decisions = await Decisions.watch(bus, name)
        await start_maintainer(component)
        await bus.publish(
            INTERFACE_CHANGED,
            InterfaceChanged(
                interface="model.catalog",
                old_version="1.0.0",
                new_version="2.0.0",
                compatibility="breaking",
            ),
        )
        escalation = await wait_until(lambda: escalation_in(bus, name, "open"))
        await EscalationStore(bus).decide(escalation.id, "approve", by="ada", note="")

        promoted = await decisions.wait_for("promoted")
        assert promoted.details["report"]["matrix"]["ok"] is True  # type: ignore[index]
        done = await wait_until(lambda: escalation_in(bus, name, "done"))
        assert done.note.startswith("promoted 1.0.1")
    finally:
        await runner.stop()
        await model.stop()
    # The run could touch only a worktree's component folder, never the checkout itself.
    assert runner.roots[0] != component
    assert runner.roots[0].name == name
    assert (component / "src" / "sample_greeter" / "catalog_v2.py").read_text() == NEW_MODULE
    deployment = await current_deployment(bus, name)
    assert deployment is not None
    assert deployment.version == "1.0.1"
