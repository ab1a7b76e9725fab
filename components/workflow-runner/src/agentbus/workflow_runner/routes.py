"""Event routes: an app's ``@app.on(INTERFACE)`` handler turns each event into a run start.

The service subscribes each route with the framework's ``Service.subscribe`` (so a
blue/green replica consumes only while its color serves) under the durable consumer
:func:`durable_name`; the subscriber :func:`event_handler` asks the route and turns
the :class:`~.definition.StartWorkflow` it returns into a start. The run id of a started run is the
route's choice, or derived from the route and the event's message id: an event
delivered again starts the same run once.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agentbus.framework import EventHandler, MessageContext, ServiceError
from agentbus.workflow_runner.definition import Route, StartWorkflow

log = logging.getLogger("agentbus.workflow_runner.routes")

StartRun = Callable[[str, dict[str, Any], str], Awaitable[object]]
"""``start(workflow, input, run_id)``: start (or find) the run; ServiceError if refused."""


def durable_name(queue_group: str, route: Route) -> str:
    """The durable consumer of a route: shared by the replicas of one queue group (and the
    same name as before routes used ``Service.subscribe``, so existing consumers continue)."""
    return f"{queue_group}__route_{route.name}"


def run_id_for(route: Route, message_id: str) -> str:
    """The run id an event starts when its route names none: the same for a redelivery."""
    return "e-" + hashlib.sha256(f"{route.name}:{message_id}".encode()).hexdigest()[:24]


def event_handler(route: Route, start: StartRun) -> EventHandler:
    """The subscriber of ``route``'s events: asks the route, starts what it returns.

    A start the runner refuses (unknown workflow, invalid input) is logged and the event
    acknowledged: delivering it again would be refused the same way."""

    async def handle(event: Any, ctx: MessageContext) -> None:
        outcome = route.handler(event)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome is None:
            return
        if not isinstance(outcome, StartWorkflow):
            raise TypeError(f"route {route.name} returned {outcome!r}, not StartWorkflow")
        run_id = outcome.run_id or run_id_for(route, ctx.metadata.message_id)
        try:
            await start(outcome.workflow, dict(outcome.input), run_id)
        except ServiceError as exc:
            log.error("route %s could not start %s: %s", route.name, outcome.workflow, exc)

    return handle
