"""A workflow app mounted into the runner containers by the docker tests (compose.test.yml).

``where`` records which container ran a step (its hostname is the replica's instance id);
``hold`` runs one step, waits in a second, then reports both places, so a replica killed
during the wait shows up as a run that started on one container and finished on another.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pydantic import BaseModel, Field

from agentbus.workflow_runner import RunContext, WorkflowApp, step

app = WorkflowApp("docker-tests")


class HoldInput(BaseModel):
    seconds: float = Field(default=0.0, ge=0, le=120)


@step
async def where() -> str:
    return socket.gethostname()


@step
async def wait_then_where(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return socket.gethostname()


@app.workflow("hold", input=HoldInput)
async def hold(run: RunContext, data: HoldInput) -> dict[str, Any]:
    """Record the container that started the run, wait, record the one that finished it."""
    started_on = await where()
    finished_on = await wait_then_where(data.seconds)
    return {"started_on": started_on, "finished_on": finished_on}
