"""Event routes under blue/green: a replica started with a deploy color consumes a route's
events only while its color serves (routes subscribe through ``Service.subscribe``)."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.js.errors import NotFoundError
from runner_helpers import NOTE_TAKEN, Note, notes, wait_status

from agentbus.framework import EVENTS, Bus
from agentbus.framework.deploy import DeploymentRecord, DeploymentStore
from agentbus.framework.testing import eventually
from agentbus.workflow_runner.store import RunStore


def record(color: str) -> DeploymentRecord:
    return DeploymentRecord.model_validate({"version": "1", "commit": "c" * 40, "color": color})


async def route_consumer_exists(bus: Bus) -> bool:
    try:
        await bus.js.consumer_info(EVENTS.name, "workflow-runner__route_on_note")
    except NotFoundError:
        return False
    return True


async def test_a_route_starts_runs_only_once_its_color_serves(start_runner: Any, bus: Bus) -> None:
    component = "workflow-runner-routes"
    deployments = await DeploymentStore.open(bus.js)
    blue_serves = await deployments.put(component, record("blue"), revision=None)
    await start_runner(
        apps=(notes,), settings={"deploy_color": "green", "deploy_component": component}
    )
    runs = await RunStore.open(bus.js)

    await bus.publish(NOTE_TAKEN, Note(number=1, text="before the flip"))
    await asyncio.sleep(1.5)  # long enough for a subscribed route to start the run
    assert await runs.get("note-1") is None, "a green replica started a run while blue serves"
    assert not await route_consumer_exists(bus)

    await deployments.put(component, record("green"), revision=blue_serves.revision)
    await eventually(lambda: route_consumer_exists(bus), what="the route consumed once green")
    await bus.publish(NOTE_TAKEN, Note(number=2, text="after the flip"))

    run = await wait_status(bus, "note-2", "finished", "failed")
    assert run.status == "finished", run.error
    assert run.result == {"kept": "after the flip"}
