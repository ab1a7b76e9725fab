"""How a tool is declared: an async function whose first parameter is a pydantic model.

::

    class ReadArgs(ToolArgs):
        path: str = Field(description="File to read.")

    @tool("fs.read", risk=Risk.LOW)
    async def read(args: ReadArgs, ctx: ToolContext) -> ToolOutcome:
        "Read a text file, optionally a range of lines."
        ...

The name, the description (the docstring), the risk and the JSON Schema of the
arguments all come from the declaration. ``risk_of`` lets a tool raise its risk
from the arguments (``shell.exec`` with a shell string is high). A tool declared
with a JSON Schema instead of a model (an imported MCP tool) has its arguments
checked against that schema; either way :meth:`Tool.parse` raises pydantic's
``ValidationError``, which the engine turns into ``schema_violation``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import jsonschema
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from agentbus.interfaces.catalog.tools import Risk, ToolSpec
from agentbus.tool_executor.policy import Policy


class ToolArgs(BaseModel):
    """Base of argument models: closed, so a misspelt argument is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool knows: who calls, under which policy, until when."""

    caller: str
    policy: Policy
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600)

    @property
    def roots(self) -> tuple[Path, ...]:
        return self.policy.roots

    def timeout(self, requested: float | None) -> float:
        """The requested timeout, capped by the policy and the call's deadline."""
        cap = min(self.policy.timeout, max(0.0, self.deadline - time.monotonic()))
        return cap if requested is None else min(requested, cap)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool function returns: text content, and structured data where it has some.

    The engine turns it into the ``Completed`` message of ``tools.execute`` (adding the
    tool's name and the duration); not to be confused with the catalog's ``ToolResult``
    (a workflow run's step) and ``ToolResultMessage`` (a tool result sent to a model).
    """

    content: str
    truncated: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    data: dict[str, JsonValue] = field(default_factory=dict)


ArgsT = TypeVar("ArgsT", bound=BaseModel)
ToolFunction = Callable[[Any, ToolContext], Awaitable[ToolOutcome]]
RiskFunction = Callable[[Any], Risk]
Precheck = Callable[[Any, Policy], None]
"""Refuses (raises) before any approval is asked for, when the policy rules the call out."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A declared tool: name, description, risk, argument model or schema, and the function."""

    name: str
    description: str
    risk: Risk
    function: ToolFunction
    args_model: type[BaseModel] | None = None
    schema: dict[str, JsonValue] | None = None
    source: str = "builtin"
    risk_of: RiskFunction | None = None
    precheck: Precheck | None = None

    def input_schema(self) -> dict[str, JsonValue]:
        if self.schema is not None:
            return self.schema
        assert self.args_model is not None
        schema: dict[str, JsonValue] = self.args_model.model_json_schema()
        return schema

    def spec(self, risk: Risk | None = None) -> ToolSpec:
        return ToolSpec(
            name=self.name,
            description=self.description,
            risk=risk or self.risk,
            input_schema=self.input_schema(),
            source=self.source,
        )

    def parse(self, arguments: dict[str, Any]) -> Any:
        """The validated arguments (raises pydantic's ``ValidationError``)."""
        if self.args_model is not None:
            return self.args_model.model_validate(arguments)
        if self.schema is not None:
            check_json_schema(self.schema, arguments)
        return arguments

    def call_risk(self, args: Any) -> Risk:
        return self.risk_of(args) if self.risk_of is not None else self.risk


def check_json_schema(schema: dict[str, JsonValue], arguments: dict[str, Any]) -> None:
    """Raise a pydantic ``ValidationError`` listing where ``arguments`` break ``schema``
    (the most relevant problem first), so one explanation serves both kinds of tool."""
    validator = jsonschema.Draft202012Validator(schema)
    found = list(validator.iter_errors(arguments))
    if not found:
        return
    best = jsonschema.exceptions.best_match(found)
    ordered = [best, *(error for error in found if error is not best)]
    raise ValidationError.from_exception_data(
        "arguments",
        [
            InitErrorDetails(
                type=PydanticCustomError("json_schema", error.message),
                loc=tuple(error.absolute_path),
                input=None,
            )
            for error in ordered
        ],
    )


def tool(
    name: str, *, risk: Risk, risk_of: RiskFunction | None = None, precheck: Precheck | None = None
) -> Callable[[Callable[[ArgsT, ToolContext], Awaitable[ToolOutcome]]], Tool]:
    """Declare a tool from an async function ``(args: Model, ctx) -> ToolOutcome``."""

    def declare(function: Callable[[ArgsT, ToolContext], Awaitable[ToolOutcome]]) -> Tool:
        hints = get_type_hints(function)
        first = next(iter(inspect.signature(function).parameters))
        model = hints[first]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"tool {name}: the first parameter must be a pydantic model")
        description = inspect.cleandoc(function.__doc__ or "").strip()
        if not description:
            raise TypeError(f"tool {name}: the docstring is the tool's description; write one")
        return Tool(
            name,
            description,
            risk,
            function,
            args_model=model,
            risk_of=risk_of,
            precheck=precheck,
        )

    return declare
