"""How application developers declare workflows, steps and event routes.

::

    app = WorkflowApp("triage")

    class TriageInput(BaseModel):
        path: str

    @step
    async def score(text: str) -> int:          # any function as a durable step
        return len(text)

    @app.workflow("triage", input=TriageInput)
    async def triage(run: RunContext, data: TriageInput) -> dict[str, Any]:
        read = await run.tool("fs.read", {"path": data.path})      # durable tool step
        reply = await run.model(GenerateRequest(...))               # durable model step
        return {"score": await score(read.content), "answer": reply.message.text}

    @app.on(ISSUE_OPENED)                        # an event starts a workflow
    def on_issue(event: IssueOpened) -> StartWorkflow:
        return StartWorkflow("triage", {"path": event.path}, run_id=f"issue-{event.number}")

The runner loads apps named in ``AGENTBUS_RUNNER_APPS`` (``module:attribute``).
A workflow is replayed from its persisted steps after a crash or an approval, so
everything it does between steps must be deterministic: decide from inputs and step
results only (time, randomness and I/O belong in steps).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, get_type_hints

from pydantic import BaseModel, JsonValue, TypeAdapter

from agentbus.interfaces.message import Interface, InterfaceKind
from agentbus.workflow_runner.errors import WorkflowDefinitionError

if TYPE_CHECKING:
    from agentbus.workflow_runner.run_context import RunContext

P = ParamSpec("P")
R = TypeVar("R")

WorkflowFunction = Callable[["RunContext", Any], Awaitable[Any]]
"""``async def workflow(run: RunContext, data: InputModel) -> JSON-able result``."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Workflow:
    """A named workflow: its function and the pydantic model of its input."""

    name: str
    function: WorkflowFunction
    input_model: type[BaseModel]
    description: str = ""

    def parse_input(self, data: dict[str, Any]) -> BaseModel:
        """Validated input; raises pydantic's ValidationError."""
        return self.input_model.model_validate(data)


@dataclass(frozen=True)
class StartWorkflow:
    """What a route returns: start ``workflow`` with ``input`` (``run_id`` makes it idempotent)."""

    workflow: str
    input: dict[str, JsonValue] = field(default_factory=dict)
    run_id: str | None = None


RouteHandler = Callable[[Any], "StartWorkflow | Awaitable[StartWorkflow | None] | None"]
"""``def route(event) -> StartWorkflow | None``: ``None`` starts nothing."""


@dataclass(frozen=True)
class Route:
    interface: Interface[Any, Any]
    handler: RouteHandler
    name: str


class WorkflowApp:
    """A set of workflows and the events that start them."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.workflows: dict[str, Workflow] = {}
        self.routes: list[Route] = []

    def add(self, workflow: Workflow) -> Workflow:
        if workflow.name in self.workflows:
            raise WorkflowDefinitionError(f"workflow {workflow.name!r} is declared twice")
        self.workflows[workflow.name] = workflow
        return workflow

    def workflow(
        self, name: str, *, input: type[BaseModel], description: str = ""
    ) -> Callable[[WorkflowFunction], WorkflowFunction]:
        """Declare ``async def f(run, data)`` as the workflow ``name`` taking ``input``."""
        if not _NAME_RE.match(name):
            raise WorkflowDefinitionError(
                f"invalid workflow name {name!r}: use lower-case letters, digits, '_', '-', '.'"
            )

        def register(function: WorkflowFunction) -> WorkflowFunction:
            if not inspect.iscoroutinefunction(function):
                raise WorkflowDefinitionError(f"workflow {name!r} must be an async function")
            doc = description or (inspect.getdoc(function) or "").split("\n")[0]
            self.add(Workflow(name, function, input, doc))
            return function

        return register

    def on(
        self, interface: Interface[Any, Any], *, name: str | None = None
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Start a workflow for every event of ``interface`` (a durable subscription)."""
        if interface.kind is not InterfaceKind.EVENT:
            raise WorkflowDefinitionError(
                f"routes start from events; {interface.key} is a {interface.kind} interface"
            )

        def register(handler: RouteHandler) -> RouteHandler:
            route_name = name or str(getattr(handler, "__name__", "route"))
            if not re.match(r"^[A-Za-z0-9_-]+$", route_name):
                raise WorkflowDefinitionError(f"route name {route_name!r} must be one token")
            if any(r.name == route_name for r in self.routes):
                raise WorkflowDefinitionError(f"route {route_name!r} is declared twice")
            self.routes.append(Route(interface, handler, route_name))
            return handler

        return register

    def extend(self, other: WorkflowApp) -> WorkflowApp:
        for workflow in other.workflows.values():
            self.add(workflow)
        for route in other.routes:
            if any(r.name == route.name for r in self.routes):
                raise WorkflowDefinitionError(f"route {route.name!r} is declared twice")
            self.routes.append(route)
        return self


def load_app(reference: str) -> WorkflowApp:
    """Import ``package.module:attribute`` (default attribute ``app``)."""
    module_name, _, attribute = reference.strip().partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute or "app")
    except (ImportError, AttributeError) as exc:
        raise WorkflowDefinitionError(f"cannot load workflows from {reference!r}: {exc}") from exc
    if not isinstance(found, WorkflowApp):
        raise WorkflowDefinitionError(f"{reference!r} is not a WorkflowApp")
    return found


# -- functions as durable steps ----------------------------------------------------------


def step(function: Callable[P, Awaitable[R]] | None = None, *, name: str | None = None) -> Any:
    """Make an async function a durable step: inside a run its result is recorded once and
    replayed afterwards; outside a run it is a plain call. The result must be JSON-able
    (or a value of its return annotation, e.g. a pydantic model).

    At least once: a crash between its effect and its record runs it again. Give what it
    changes elsewhere :func:`~agentbus.workflow_runner.step_key` as an idempotency key."""

    def wrap(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(fn):
            raise WorkflowDefinitionError(f"@step needs an async function; {fn!r} is not")
        step_name = name or fn.__name__
        try:
            returns = get_type_hints(fn).get("return", Any)
        except NameError:
            returns = Any
        adapter: TypeAdapter[Any] = TypeAdapter(returns)

        @functools.wraps(fn)
        async def durable(*args: P.args, **kwargs: P.kwargs) -> R:
            from agentbus.workflow_runner.run_context import current_run

            run = current_run()
            if run is None:
                return await fn(*args, **kwargs)
            result: R = await run.call(step_name, lambda: fn(*args, **kwargs), adapter)
            return result

        return durable

    return wrap(function) if function is not None else wrap
