"""Preset workflows: ``tool_loop``, ``react``, ``reflection`` and ``code-change``.

``tool_loop`` is the agent loop: the model answers or calls tools; the calls run
through the tool executor under the caller's policy; the results go back to the
model; until a stop condition holds:

* the model calls no more tools (``no_tool_calls``);
* it called a tool named in ``stop_on_tools`` (``tool_called``);
* the token or cost budget is spent (``token_budget``, ``cost_budget``).

It fails with ``max_turns`` after ``max_turns`` model calls without stopping, and with
``timeout`` after ``timeout`` seconds of running time.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentbus.interfaces.catalog.model import (
    GenerateRequest,
    GenerationSettings,
    Message,
    SystemMessage,
    ToolDefinition,
    UserMessage,
)
from agentbus.workflow_runner import context_window
from agentbus.workflow_runner.confine import Confinement
from agentbus.workflow_runner.definition import WorkflowApp
from agentbus.workflow_runner.errors import RunFailed
from agentbus.workflow_runner.run_context import RunContext

presets = WorkflowApp("presets")

TOOL_LOOP_SYSTEM = (
    "You are a careful agent. Use the tools to do the task; when it is done, answer with a "
    "short report and call no more tools."
)
REACT_SYSTEM = (
    "Solve the task step by step. Before each action write 'Thought:' with your reasoning, "
    "then call one tool. When you know the answer, write 'Final Answer:' followed by it and "
    "call no tool."
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Closed):
    """Stop once spent; prices are per million tokens."""

    max_tokens: int | None = Field(default=None, gt=0, description="Input + output tokens.")
    max_cost: float | None = Field(default=None, gt=0)
    input_price: float = Field(default=0.0, ge=0, description="Per million input tokens.")
    output_price: float = Field(default=0.0, ge=0, description="Per million output tokens.")


class ToolLoopInput(_Closed):
    prompt: str = Field(min_length=1, description="The task, as the first user message.")
    model: str | None = Field(
        default=None, description="A model alias; unset: the first language alias with tools."
    )
    system: str | None = Field(default=None, description="System prompt (a preset default).")
    tools: list[str] = Field(
        default_factory=list,
        description="Allowed tool names or patterns (fs.*); empty: no tools.",
    )
    caller: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Whose tool policy applies (default: the runner's tool_caller).",
    )
    max_turns: int = Field(default=10, gt=0, le=500)
    timeout: float = Field(default=600.0, gt=0, description="Seconds of running time.")
    stop_on_tools: list[str] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    context_budget: int | None = Field(
        default=None, gt=0, description="Tokens; unset: 80% of the alias's context window."
    )
    stream: bool = Field(default=True, description="Stream text deltas as run events.")
    temperature: float | None = Field(default=None, ge=0, le=2)


class Usage(_Closed):
    input_tokens: int = 0
    output_tokens: int = 0


class ToolLoopResult(_Closed):
    text: str
    stop_reason: str
    turns: int
    tool_calls: int
    usage: Usage
    cost: float


def model_tool_name(tool: str) -> str:
    """Executor tool names have dots (fs.read); model tool names may not."""
    return tool.replace(".", "_")


async def _tools(
    run: RunContext, data: ToolLoopInput
) -> tuple[list[ToolDefinition], dict[str, str]]:
    if not data.tools:
        return [], {}
    listed = await run.list_tools(data.caller)
    definitions: list[ToolDefinition] = []
    names: dict[str, str] = {}
    for spec in listed.tools:
        if any(fnmatch.fnmatchcase(spec.name, pattern) for pattern in data.tools):
            name = model_tool_name(spec.name)
            if name in names:
                raise RunFailed("invalid", f"tools {names[name]} and {spec.name} clash as {name}")
            names[name] = spec.name
            definitions.append(
                ToolDefinition(
                    name=name,
                    description=f"{spec.description} (risk: {spec.risk})",
                    parameters=spec.input_schema,
                )
            )
    return definitions, names


async def _model_and_budget(run: RunContext, data: ToolLoopInput) -> tuple[str, int | None]:
    if data.model is not None and data.context_budget is not None:
        return data.model, data.context_budget
    catalog = await run.catalog()
    language = [a for a in catalog.aliases if a.capability == "language"]
    alias = next((a for a in language if a.alias == data.model), None)
    if alias is None and data.model is None:
        alias = next((a for a in language if a.tools), language[0] if language else None)
        if alias is None:
            raise RunFailed(
                "not_configured",
                "the model gateway serves no language model: configure one (models.toml or "
                "OPENAI_BASE_URL / ANTHROPIC_API_KEY), or name `model` in the input",
            )
    model = data.model or (alias.alias if alias else "")
    budget = data.context_budget
    if budget is None and alias is not None and alias.context_window:
        budget = int(alias.context_window * 0.8)
    return model, budget


async def tool_loop(
    run: RunContext,
    data: ToolLoopInput,
    system: str = TOOL_LOOP_SYSTEM,
    *,
    confine_to: str | None = None,
) -> Any:
    """The agent loop: model, tools, results, until a stop condition.

    ``confine_to`` keeps every path argument of the tools under that folder.
    """
    run.set_timeout(data.timeout)
    model, context_budget = await _model_and_budget(run, data)
    definitions, names = await _tools(run, data)
    confine = Confinement.of(confine_to, definitions) if confine_to else None
    stop_tools = set(data.stop_on_tools)
    messages: list[Message] = [
        SystemMessage(content=data.system or system),
        UserMessage(content=data.prompt),
    ]
    usage = Usage()
    calls = 0
    budget = data.budget
    for turn in range(1, data.max_turns + 1):
        if context_budget is not None and (parts := context_window.split(messages, context_budget)):
            head, old, recent = parts
            summary = await run.model(context_window.summary_request(model, old), name="summarise")
            messages = [*head, context_window.summary_message(summary.message.text), *recent]
        request = GenerateRequest(
            model=model,
            messages=messages,
            tools=definitions,
            settings=GenerationSettings(temperature=data.temperature),
        )
        reply = await run.model(request, stream=data.stream)
        usage = Usage(
            input_tokens=usage.input_tokens + reply.usage.input_tokens,
            output_tokens=usage.output_tokens + reply.usage.output_tokens,
        )
        cost = (
            usage.input_tokens * budget.input_price + usage.output_tokens * budget.output_price
        ) / 1e6
        messages.append(reply.message)
        stop: str | None = None
        if not reply.message.tool_calls:
            stop = "no_tool_calls"
        else:
            messages += await run.tool_calls(
                reply.message.tool_calls, names, caller=data.caller, confine=confine
            )
            calls += len(reply.message.tool_calls)
            if any(names.get(c.name) in stop_tools for c in reply.message.tool_calls):
                stop = "tool_called"
            elif (
                budget.max_tokens and usage.input_tokens + usage.output_tokens >= budget.max_tokens
            ):
                stop = "token_budget"
            elif budget.max_cost and cost >= budget.max_cost:
                stop = "cost_budget"
        if stop is not None:
            return ToolLoopResult(
                text=reply.message.text,
                stop_reason=stop,
                turns=turn,
                tool_calls=calls,
                usage=usage,
                cost=round(cost, 6),
            )
    raise RunFailed(
        "max_turns",
        f"the model was still calling tools after max_turns={data.max_turns} turns; raise "
        "max_turns or narrow the task",
        turns=data.max_turns,
        tool_calls=calls,
    )


@presets.workflow("tool_loop", input=ToolLoopInput)
async def tool_loop_workflow(run: RunContext, data: ToolLoopInput) -> Any:
    """A model with tools, turn by turn, until it stops calling tools (or a limit)."""
    return await tool_loop(run, data)


@presets.workflow("react", input=ToolLoopInput)
async def react(run: RunContext, data: ToolLoopInput) -> Any:
    """Reason-and-act: 'Thought:' then a tool call, until a 'Final Answer:'."""
    outcome: ToolLoopResult = await tool_loop(run, data, system=REACT_SYSTEM)
    _, marker, answer = outcome.text.partition("Final Answer:")
    return {**outcome.model_dump(), "answer": answer.strip() if marker else outcome.text}


class ReflectionInput(_Closed):
    task: str = Field(min_length=1)
    model: str = Field(min_length=1)
    critic_model: str | None = Field(default=None, description="Defaults to `model`.")
    rounds: int = Field(default=2, gt=0, le=10)
    system: str | None = None
    stream: bool = False
    timeout: float = Field(default=600.0, gt=0)


CRITIC = (
    "You review an answer to a task. List concrete problems and how to fix them. If the "
    "answer needs no change, reply with exactly APPROVED."
)


@presets.workflow("reflection", input=ReflectionInput)
async def reflection(run: RunContext, data: ReflectionInput) -> Any:
    """Draft, then critique and revise for up to ``rounds`` rounds."""
    run.set_timeout(data.timeout)
    system = SystemMessage(content=data.system or "You are a careful expert. Answer the task.")
    task = UserMessage(content=data.task)
    draft = await run.model(
        GenerateRequest(model=data.model, messages=[system, task]), stream=data.stream, name="draft"
    )
    answer = draft.message.text
    rounds: list[dict[str, str]] = []
    for _ in range(data.rounds):
        critique = await run.model(
            GenerateRequest(
                model=data.critic_model or data.model,
                messages=[
                    SystemMessage(content=CRITIC),
                    UserMessage(content=f"Task:\n{data.task}\n\nAnswer:\n{answer}"),
                ],
            ),
            name="critique",
        )
        text = critique.message.text.strip()
        if text.upper().startswith("APPROVED"):
            return {"answer": answer, "rounds": rounds, "approved": True}
        revised = await run.model(
            GenerateRequest(
                model=data.model,
                messages=[
                    system,
                    task,
                    UserMessage(
                        content=f"Your answer:\n{answer}\n\nA reviewer says:\n{text}\n\n"
                        "Write the improved answer only."
                    ),
                ],
            ),
            stream=data.stream,
            name="revise",
        )
        answer = revised.message.text
        rounds.append({"critique": text, "revision": answer})
    return {"answer": answer, "rounds": rounds, "approved": False}


CODE_CHANGE_TOOLS = [
    "fs.read", "fs.write", "fs.edit", "fs.list", "fs.glob", "fs.grep",
    "git.status", "git.diff", "python.test",
]  # fmt: skip

CODE_CHANGE_SYSTEM = (
    "You maintain one software component. Change its code as instructed, using only the "
    "tools offered and only paths under the component's folder. Run its tests with "
    "python.test until they pass, then answer with a short report of what you changed and "
    "call no more tools. Do not commit: the maintainer tests and commits the change."
)


class CodeChangeInput(_Closed):
    """What the maintainer asks for after an approved escalation."""

    component: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    root: str = Field(min_length=1, description="The only folder the run's tools may touch.")
    instructions: str = Field(min_length=1)
    test_command: list[str] = Field(
        default_factory=list, description="How the maintainer will test the change."
    )
    model: str | None = None
    caller: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    max_turns: int = Field(default=40, gt=0, le=500)
    timeout: float = Field(default=1800.0, gt=0)


@presets.workflow("code-change", input=CodeChangeInput)
async def code_change(run: RunContext, data: CodeChangeInput) -> Any:
    """A tool loop that edits one component's folder and runs its tests (for maintainers)."""
    testing = (
        f" The maintainer will then run: {' '.join(data.test_command)}."
        if (data.test_command)
        else ""
    )
    prompt = (
        f"{data.instructions}\n\nComponent: {data.component}. Its folder is {data.root}; "
        f"every path you use must be under it.{testing}"
    )
    loop = ToolLoopInput(
        prompt=prompt,
        model=data.model,
        tools=CODE_CHANGE_TOOLS,
        caller=data.caller,
        max_turns=data.max_turns,
        timeout=data.timeout,
    )
    return await tool_loop(run, loop, system=CODE_CHANGE_SYSTEM, confine_to=data.root)
