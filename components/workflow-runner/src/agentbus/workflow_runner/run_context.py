"""What a workflow function gets: :class:`RunContext`, the model and tool steps of one run.

The numbering, replay and recording of steps is :class:`~.journal.StepJournal`'s; this
module turns model calls (plain or streamed), the gateway's catalog, the executor's
tool list and tool calls into such steps, retrying what is transient and parking the
run (:class:`~.errors.Suspended`) when a tool call waits for approval.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from agentbus.framework import (
    Bus,
    BusError,
    NoRespondersError,
    PermissionDeniedError,
    RemoteError,
    RequestTimeoutError,
)
from agentbus.interfaces.catalog.model import (
    CATALOG,
    GENERATE,
    STREAM,
    AssistantMessage,
    CatalogReply,
    CatalogRequest,
    Finish,
    GenerateReply,
    GenerateRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    UsageUpdate,
)
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    ApprovalRequired,
    Completed,
    ExecuteRequest,
    ListToolsReply,
    ListToolsRequest,
)
from agentbus.interfaces.catalog.workflows import (
    PendingApproval,
    RunInfo,
    RunTextDelta,
    RunToolResult,
    StepInfo,
    ToolCalled,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.workflow_runner.confine import Confinement, OutsideRoot
from agentbus.workflow_runner.errors import RunFailed, Suspended
from agentbus.workflow_runner.journal import StepJournal
from agentbus.workflow_runner.run_events import RunEvents
from agentbus.workflow_runner.settings import RunnerSettings
from agentbus.workflow_runner.store import RunStore

log = logging.getLogger("agentbus.workflow_runner.run_context")
NO_EXECUTOR_PATIENCE = 30.0
"""Seconds a tool call waits for any tool executor to answer (one restarting) before the
run fails ``unavailable``."""

T = TypeVar("T")

_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "agentbus_workflow_run", default=None
)

TRANSIENT = {ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.LIMITED, ErrorCode.OVERLOADED}
"""Codes after which the same call is tried again (with backoff) instead of failing the run."""


def current_run() -> RunContext | None:
    """The run whose workflow is executing in this task, if any."""
    return _current.get()


class ToolFailure(BaseModel):
    """A tool call the executor refused or that failed: the model sees it as an error result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["error"] = "error"
    tool: str
    code: str
    message: str


ToolOutcome = Annotated[Completed | ToolFailure, Field(discriminator="status")]
_OUTCOME: TypeAdapter[Completed | ToolFailure] = TypeAdapter(ToolOutcome)
_REPLY: TypeAdapter[GenerateReply] = TypeAdapter(GenerateReply)
_TOOLS: TypeAdapter[ListToolsReply] = TypeAdapter(ListToolsReply)
_CATALOG: TypeAdapter[CatalogReply] = TypeAdapter(CatalogReply)


class _NeedsApproval(Exception):
    def __init__(self, required: ApprovalRequired) -> None:
        super().__init__(required.approval_id)
        self.required = required


class RunContext(StepJournal):
    """What a workflow function gets: durable model, tool and function steps for one run."""

    def __init__(
        self,
        run: RunInfo,
        journal: Sequence[StepInfo],
        *,
        bus: Bus,
        store: RunStore,
        events: RunEvents,
        settings: RunnerSettings,
    ) -> None:
        super().__init__(run, journal, store=store, events=events)
        self.workflow = run.workflow
        self.input = run.input
        self.caller = settings.tool_caller
        self._bus = bus
        self._settings = settings

    # -- calling services ----------------------------------------------------------------

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Call again after transient failures (service down, timeout, rate limit)."""
        tries = self._settings.step_retries + 1
        for attempt in range(tries):
            try:
                return await call()
            except RemoteError as exc:
                if exc.code not in TRANSIENT or attempt == tries - 1:
                    raise RunFailed(
                        exc.code, f"{what}: {exc.reply.message}", **exc.details
                    ) from exc
                log.warning("%s failed (%s), retrying", what, exc.code)
            except PermissionDeniedError as exc:
                raise RunFailed("forbidden", f"{what}: {exc}") from exc
            except BusError as exc:
                # The service is absent or slow, or the bus itself failed under the call (a
                # connection lost mid-stream, chunks lost in an outage): all worth a retry.
                if attempt == tries - 1:
                    raise RunFailed("unavailable", f"{what}: {exc}") from exc
                log.warning("%s failed (%s), retrying", what, exc)
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")

    # -- model steps -------------------------------------------------------------------

    async def model(
        self, request: GenerateRequest, *, stream: bool = False, name: str = "model"
    ) -> GenerateReply:
        """A durable model call; ``stream`` publishes text deltas as run events."""
        index = self._next
        if stream:
            return await self.call(name, lambda: self._stream(index, request), _REPLY, kind="model")

        async def generate() -> GenerateReply:
            return await self._retrying(
                "the model call",
                lambda: self._bus.request(GENERATE, request, timeout=self._settings.model_timeout),
            )

        return await self.call(name, generate, _REPLY, kind="model")

    async def _stream(self, index: int, request: GenerateRequest) -> GenerateReply:
        async def once() -> GenerateReply:
            text: list[str] = []
            calls: dict[int, dict[str, Any]] = {}
            finish: Finish | None = None
            async with self._bus.stream(
                STREAM, request, timeout=self._settings.model_timeout
            ) as chunks:
                async for chunk in chunks:
                    part = chunk.part
                    if isinstance(part, TextDelta):
                        text.append(part.text)
                        await self._events.emit(
                            self.run_id, RunTextDelta(index=index, text=part.text)
                        )
                    elif isinstance(part, ToolCallDelta):
                        call = calls.setdefault(part.index, {"id": "", "name": "", "args": []})
                        call["id"] = part.id or call["id"]
                        call["name"] = part.name or call["name"]
                        call["args"].append(part.arguments)
                    elif isinstance(part, Finish):
                        finish = part
                    elif isinstance(part, UsageUpdate):
                        continue
            if finish is None:
                raise RunFailed("upstream", "the model stream ended without a finish part")
            tool_calls = [
                ToolCall(id=c["id"], name=c["name"], arguments=_arguments("".join(c["args"])))
                for _, c in sorted(calls.items())
            ]
            return GenerateReply(
                message=AssistantMessage(text="".join(text), tool_calls=tool_calls),
                finish_reason=finish.finish_reason,
                usage=finish.usage,
                model=finish.model,
                alias=finish.alias,
                provider=finish.provider,
            )

        return await self._retrying("the model stream", once)

    async def catalog(self) -> CatalogReply:
        """The gateway's model aliases, as a durable step."""

        async def ask() -> CatalogReply:
            return await self._retrying(
                "model.catalog", lambda: self._bus.request(CATALOG, CatalogRequest())
            )

        return await self.call("model.catalog", ask, _CATALOG)

    # -- tool steps --------------------------------------------------------------------

    async def list_tools(self, caller: str | None = None) -> ListToolsReply:
        """The tools the caller may use, as a durable step."""
        request = ListToolsRequest(caller=caller or self.caller)

        async def ask() -> ListToolsReply:
            return await self._retrying(
                "tools.list", lambda: self._bus.request(TOOLS_LIST, request)
            )

        return await self.call("tools.list", ask, _TOOLS)

    async def tool(
        self,
        tool: str,
        arguments: dict[str, JsonValue] | None = None,
        *,
        caller: str | None = None,
        tool_call_id: str | None = None,
    ) -> Completed | ToolFailure:
        """A durable tool call; waits (the run parks) when it needs approval.

        Refusals and tool errors come back as :class:`ToolFailure` (for the model to
        read); an unreachable executor fails the run after retries.
        """
        index = self._next
        key = self.key(index)
        request = ExecuteRequest(
            tool=tool, arguments=arguments or {}, caller=caller or self.caller, idempotency_key=key
        )
        call_id = tool_call_id or key

        async def execute() -> Completed | ToolFailure:
            await self._events.emit(
                self.run_id,
                ToolCalled(
                    index=index, tool_call_id=call_id, tool=tool, arguments=request.arguments
                ),
            )
            outcome = await self._execute_tool(request)
            content, is_error = render(outcome)
            await self._events.emit(
                self.run_id,
                RunToolResult(
                    index=index,
                    tool_call_id=call_id,
                    tool=tool,
                    content=content[:2000],
                    is_error=is_error,
                ),
            )
            return outcome

        try:
            return await self.call(f"tool:{tool}", execute, _OUTCOME, kind="tool")
        except _NeedsApproval as needs:
            required = needs.required
            await self._store.remember_approval(required.approval_id, self.run_id)
            raise Suspended(
                [
                    PendingApproval(
                        tool_call_id=call_id,
                        approval_id=required.approval_id,
                        tool=tool,
                        arguments=request.arguments,
                        idempotency_key=required.idempotency_key,
                    )
                ]
            ) from None

    async def _execute_tool(self, request: ExecuteRequest) -> Completed | ToolFailure:
        """Send the call in short attempts (``tool_attempt_timeout``) with the same
        idempotency key until ``tool_timeout``: the executor runs it once and replays its
        outcome; while it runs, a retry hears "still running" and waits; if the executor
        died, its claim's lease lapses and a retry runs it again (see the executor's ledger)."""
        what = f"tools.execute {request.tool}"
        deadline = time.monotonic() + self._settings.tool_timeout
        attempt = 0
        absent_since: float | None = None
        while True:
            left = deadline - time.monotonic()
            try:
                reply = await self._bus.request(
                    TOOLS_EXECUTE,
                    request,
                    timeout=max(0.1, min(self._settings.tool_attempt_timeout, left)),
                )
            except RemoteError as exc:
                still_running = exc.code == ErrorCode.CONFLICT and "still running" in str(exc)
                if still_running and time.monotonic() < deadline:
                    # the same call (same key) runs already, e.g. started before a crash
                    await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
                    attempt += 1
                    continue
                if exc.code in TRANSIENT and attempt < self._settings.step_retries:
                    await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
                    attempt += 1
                    continue
                if exc.code in TRANSIENT:
                    raise RunFailed(exc.code, f"{what}: {exc.reply.message}") from exc
                return ToolFailure(tool=request.tool, code=exc.code, message=exc.reply.message)
            except RequestTimeoutError as exc:
                if time.monotonic() >= deadline:
                    raise RunFailed(
                        "timeout",
                        f"{what}: no outcome within the tool timeout "
                        f"({self._settings.tool_timeout:g} s): {exc}",
                    ) from exc
                log.info("%s: no reply within one attempt; asking again with its key", what)
                continue
            except NoRespondersError as exc:
                # No executor at all: one restarting (a crash, a deploy) is back in seconds.
                absent_since = absent_since or time.monotonic()
                if time.monotonic() - absent_since > NO_EXECUTOR_PATIENCE or (
                    time.monotonic() >= deadline
                ):
                    raise RunFailed(
                        "unavailable",
                        f"{what}: no tool executor answered for {NO_EXECUTOR_PATIENCE:g} s: {exc}",
                    ) from exc
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
                attempt += 1
                continue
            if isinstance(reply.result, ApprovalRequired):
                raise _NeedsApproval(reply.result)
            return reply.result

    async def tool_calls(
        self,
        calls: Sequence[ToolCall],
        tool_names: dict[str, str] | None = None,
        *,
        caller: str | None = None,
        confine: Confinement | None = None,
    ) -> list[ToolResultMessage]:
        """Run a model's tool calls in order; ``tool_names`` maps model names to executor names.

        With ``confine``, path arguments are resolved under its root and a call that
        reaches outside is refused to the model (see :mod:`.confine`).

        Every call is tried before the run parks, so one approval round covers all the calls
        of a turn that need a decision.
        """
        names = tool_names or {}
        results: list[ToolResultMessage] = []
        pending: list[PendingApproval] = []
        for call in calls:
            tool = names.get(call.name)
            refusal = None
            arguments = dict(call.arguments)
            if tool is None:
                refusal = f"there is no tool named {call.name!r}; use one of the tools offered"
            elif confine is not None:
                try:
                    arguments = confine.apply(call.name, arguments)
                except OutsideRoot as outside:
                    refusal = str(outside)
            if tool is None or refusal is not None:
                self.skip()  # keep indices stable: a refused call is still a step slot
                results.append(
                    ToolResultMessage(
                        tool_call_id=call.id, name=call.name, content=str(refusal), is_error=True
                    )
                )
                continue
            try:
                outcome = await self.tool(tool, arguments, caller=caller, tool_call_id=call.id)
            except Suspended as suspended:
                pending += suspended.pending
                continue
            content, is_error = render(outcome)
            results.append(
                ToolResultMessage(
                    tool_call_id=call.id, name=call.name, content=content, is_error=is_error
                )
            )
        if pending:
            raise Suspended(pending)
        return results


def render(outcome: Completed | ToolFailure) -> tuple[str, bool]:
    """What the model reads for a tool outcome, and whether it is an error."""
    if isinstance(outcome, ToolFailure):
        return f"error ({outcome.code}): {outcome.message}", True
    text = outcome.content
    if outcome.truncated:
        text += "\n[output truncated]"
    if outcome.timed_out:
        text += "\n[timed out]"
    failed = outcome.exit_code is not None and outcome.exit_code != 0
    if failed:
        text += f"\n[exit code {outcome.exit_code}]"
    return text, failed


def _arguments(text: str) -> dict[str, JsonValue]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_invalid_json": text}
    return value if isinstance(value, dict) else {"_value": value}


def enter(run: RunContext) -> contextvars.Token[RunContext | None]:
    return _current.set(run)


def leave(token: contextvars.Token[RunContext | None]) -> None:
    _current.reset(token)
