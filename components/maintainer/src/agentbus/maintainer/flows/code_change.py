"""After an approved escalation: a code-change workflow on the workflow runner.

The maintainer prepares a worktree on a new branch and starts workflow
``code-change`` (``workflows.start``) with the instructions and the worktree's
component folder as the only root the run's file, git and test tools may touch.
When the run finishes, the change takes the same path as every other: tests on
the old and the new version, PASS_TO_PASS, commit, promotion.

It runs only when a model is configured (the alias is in ``model.catalog``) and
a workflow runner answers; otherwise the escalation ends with a note that a
person must change the code.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agentbus.framework import Bus, BusError
from agentbus.interfaces.catalog.maintenance import Escalation
from agentbus.interfaces.catalog.model import CATALOG, CatalogRequest
from agentbus.interfaces.catalog.workflows import (
    TERMINAL,
    WORKFLOWS_GET,
    WORKFLOWS_START,
    GetRequest,
    StartRequest,
)
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.flows.change import ChangeReport, attempt_change
from agentbus.maintainer.gitwork import open_repo, slug
from agentbus.maintainer.rules import Decision

WORKFLOW = "code-change"


async def model_configured(bus: Bus, alias: str) -> bool:
    """Whether the gateway answers and knows ``alias``."""
    try:
        catalog = await bus.request(CATALOG, CatalogRequest(), timeout=5.0)
    except BusError:
        return False
    return any(a.alias == alias for a in catalog.aliases)


def instructions(component: ComponentContext, escalation: Escalation) -> str:
    return (
        f"You maintain the component {component.name}. This change was approved: "
        f"{escalation.reason}\nEvent {escalation.event}: {json.dumps(escalation.payload)}\n"
        "Change the code under the root folder so that the component works with it, keep "
        "every existing test passing, and stop when the tests pass. Touch nothing outside "
        "the root folder."
    )


async def run_workflow(
    bus: Bus, run_id: str, workflow_input: dict[str, Any], *, timeout: float, poll: float = 1.0
) -> dict[str, Any]:
    """Start the run (idempotent on ``run_id``) and wait for its end; return its result."""
    started = await bus.request(
        WORKFLOWS_START, StartRequest(workflow=WORKFLOW, input=workflow_input, run_id=run_id)
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await bus.request(
            WORKFLOWS_GET, GetRequest(run_id=started.run_id, include_steps=False)
        )
        if reply.run.status in TERMINAL:
            if reply.run.status != "finished":
                error = reply.run.error.message if reply.run.error else reply.run.status
                raise FlowError(f"code-change run {run_id} ended {reply.run.status}: {error}")
            return {"run_id": run_id, "result": reply.run.result}
        await asyncio.sleep(poll)
    raise FlowError(f"code-change run {run_id} did not finish within {timeout:g}s")


async def change_code(
    bus: Bus,
    component: ComponentContext,
    escalation: Escalation,
    decision: Decision,
    *,
    timeout: float = 1800.0,
) -> ChangeReport:
    """Let a workflow edit a worktree, then test both versions and commit."""

    async def edit(component_dir: Path) -> list[Path]:
        await run_workflow(
            bus,
            f"maint-{slug(escalation.id)}",
            {
                "component": component.name,
                "root": str(component_dir),
                "instructions": instructions(component, escalation),
                "test_command": list(component.config["test_command"]),
                "model": component.model,
            },
            timeout=timeout,
        )
        repo, _ = open_repo(component_dir)
        with repo:
            names = [d.a_path for d in repo.index.diff(None)] + repo.untracked_files
            root = Path(repo.working_tree_dir or component_dir)
        changed = [root / n for n in names if n and (root / n).is_relative_to(component_dir)]
        if not changed:
            raise FlowError("the code-change run finished without changing any file")
        return changed

    return await attempt_change(
        component,
        title=f"{component.name}: code change for escalation {escalation.id}",
        branch_slug=f"code-change-{escalation.id[:8]}",
        edit=edit,
        decision=decision,
        relock=None,
    )
