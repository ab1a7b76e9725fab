"""Workflows: durable agent runs, served by the workflow runner.

=========================  =========  =====================================================
interface                  kind       what
=========================  =========  =====================================================
``workflows.start``        request    workflow name + input -> a run id, at once
``workflows.get``          request    a run: status, steps, pending approvals, result
``workflows.cancel``       request    stop a run (at its next step boundary)
``workflows.resume``       request    queue a waiting run again (decisions: refused, below)
``workflows.list``         request    runs, newest first, filtered by status / workflow
``workflows.run.event``    event      progress of one run on ``agentbus.runs.<id>.events``
=========================  =========  =====================================================

A run moves ``queued`` -> ``running`` -> ``finished`` | ``failed`` | ``cancelled``;
``running`` -> ``waiting_approval`` -> ``queued`` when a tool call needs a human decision.
Every step's result is persisted before the next starts; a run survives the loss of its
runner replica and continues from its last persisted step.

Approvals are decided at the tool executor (``tools.approvals.decide``) by an identity
other than the one that made the call; the runner makes its runs' calls, so it refuses
``workflows.resume`` decisions (``forbidden``) and continues a run when the executor's
``tools.approval.decided`` event says its calls were decided (``agentbus runs resume``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from agentbus.interfaces.message import BusMessage, event_interface, request_interface

RunStatus = Literal["queued", "running", "waiting_approval", "finished", "failed", "cancelled"]
TERMINAL: tuple[RunStatus, ...] = ("finished", "failed", "cancelled")

_RUN_ID = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_-]+$",
    description="The run id (one subject token).",
)


class RunError(BusMessage):
    """Why a run failed: an error code (``timeout``, ``max_turns``, ``upstream``, ...)."""

    code: str
    message: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class PendingApproval(BusMessage):
    """A tool call of a run that waits for a human decision."""

    tool_call_id: str = Field(description="The model's tool-call id; resume decisions use it.")
    approval_id: str = Field(description="The tool executor's approval id (`agentbus approvals`).")
    tool: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    idempotency_key: str
    decision: Literal["approved", "denied"] | None = None


class StepInfo(BusMessage):
    """One persisted step of a run."""

    index: int = Field(ge=0)
    name: str = Field(description="e.g. model, tool:fs.read, tools.list, summarise, or a step's.")
    kind: Literal["model", "tool", "function"]
    idempotency_key: str = Field(description="<run id>:<index>; passed to tools.execute.")
    started_at: str = Field(description="ISO 8601, UTC.")
    duration_ms: float
    result: JsonValue = None


class RunInfo(BusMessage):
    run_id: str
    workflow: str
    status: RunStatus
    input: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: str = Field(description="ISO 8601, UTC.")
    updated_at: str
    result: JsonValue = None
    error: RunError | None = None
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    steps: list[StepInfo] = Field(
        default_factory=list, description="Persisted steps (workflows.get fills them)."
    )
    attempts: int = Field(default=0, description="How many times a replica took the run.")
    cancel_requested: bool = False
    generation: int = Field(default=0, description="Times the run was parked and re-dispatched.")
    elapsed_seconds: float = Field(default=0.0, description="Running time (not waiting).")
    replica: str | None = Field(default=None, description="The replica that ran it last.")


class RunSummary(BusMessage):
    run_id: str
    workflow: str
    status: RunStatus
    created_at: str
    updated_at: str
    attempts: int = 0
    error: RunError | None = None


# -- requests ---------------------------------------------------------------------------


class StartRequest(BusMessage):
    workflow: str = Field(min_length=1, max_length=100, description="A registered workflow.")
    input: dict[str, JsonValue] = Field(default_factory=dict)
    run_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Choose the id (idempotent start: the same id and input start one run).",
    )


class StartReply(BusMessage):
    run_id: str
    status: RunStatus
    events_subject: str = Field(description="Where the run's events are published.")
    created: bool = Field(default=True, description="False: a run with this id existed.")


class GetRequest(BusMessage):
    run_id: str = _RUN_ID
    include_steps: bool = True


class GetReply(BusMessage):
    run: RunInfo


class CancelRequest(BusMessage):
    run_id: str = _RUN_ID
    reason: str | None = Field(default=None, max_length=2000)


class CancelReply(BusMessage):
    run_id: str
    status: RunStatus = Field(
        description="cancelled, or the terminal status it already had; running when the "
        "replica holding it does not answer (it is cancelled when next taken)."
    )


class ResumeRequest(BusMessage):
    run_id: str = _RUN_ID
    decisions: dict[str, Literal["approve", "deny"]] = Field(
        default_factory=dict, description="Decision per pending tool-call id."
    )
    decided_by: str = Field(default="unknown", min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class ResumeReply(BusMessage):
    run_id: str
    status: RunStatus
    pending_approvals: list[PendingApproval] = Field(default_factory=list)


class ListRunsRequest(BusMessage):
    status: RunStatus | None = None
    workflow: str | None = None
    limit: int = Field(default=50, gt=0, le=1000)


class ListRunsReply(BusMessage):
    runs: list[RunSummary]


# -- events -----------------------------------------------------------------------------


class RunStarted(BusMessage):
    kind: Literal["run_started"] = "run_started"
    workflow: str
    input: dict[str, JsonValue] = Field(default_factory=dict)


class RunResumed(BusMessage):
    kind: Literal["resumed"] = "resumed"
    reason: Literal["approval", "redelivery", "restart"]
    replayed_steps: int = 0


class StepStarted(BusMessage):
    kind: Literal["step_started"] = "step_started"
    index: int
    name: str


class StepFinished(BusMessage):
    kind: Literal["step_finished"] = "step_finished"
    index: int
    name: str
    duration_ms: float


class RunTextDelta(BusMessage):
    """Text the model produced in a run step (not the model stream's ``TextDelta``)."""

    kind: Literal["text"] = "text"
    index: int = Field(description="The model step the text belongs to.")
    text: str


class ToolCalled(BusMessage):
    kind: Literal["tool_call"] = "tool_call"
    index: int
    tool_call_id: str
    tool: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class RunToolResult(BusMessage):
    """A tool call's result as the run reports it."""

    kind: Literal["tool_result"] = "tool_result"
    index: int
    tool_call_id: str
    tool: str
    content: str = Field(description="What the model sees (capped at 2000 characters here).")
    is_error: bool = False


class WaitingApproval(BusMessage):
    kind: Literal["waiting_approval"] = "waiting_approval"
    pending_approvals: list[PendingApproval]


class RunEnded(BusMessage):
    kind: Literal["finished", "failed", "cancelled"]
    result: JsonValue = None
    error: RunError | None = None


RunEventBody = Annotated[
    RunStarted
    | RunResumed
    | StepStarted
    | StepFinished
    | RunTextDelta
    | ToolCalled
    | RunToolResult
    | WaitingApproval
    | RunEnded,
    Field(discriminator="kind"),
]


class RunEvent(BusMessage):
    """One thing that happened in a run."""

    run_id: str
    at: str = Field(description="ISO 8601, UTC.")
    replica: str = Field(description="The runner instance that published it.")
    event: RunEventBody


WORKFLOWS_START = request_interface(
    "workflows.start",
    "1.0.0",
    request=StartRequest,
    reply=StartReply,
    description="Start a workflow run; replies with the run id at once.",
)
WORKFLOWS_GET = request_interface(
    "workflows.get",
    "1.0.0",
    request=GetRequest,
    reply=GetReply,
    description="A run: status, persisted steps, pending approvals, result or error.",
)
WORKFLOWS_CANCEL = request_interface(
    "workflows.cancel",
    "1.0.0",
    request=CancelRequest,
    reply=CancelReply,
    description="Cancel a run; a running one stops at once, its finished steps stay recorded.",
)
WORKFLOWS_RESUME = request_interface(
    "workflows.resume",
    "1.0.0",
    request=ResumeRequest,
    reply=ResumeReply,
    description="Decide a run's pending approvals (by tool-call id) and continue it.",
)
WORKFLOWS_LIST = request_interface(
    "workflows.list",
    "1.0.0",
    request=ListRunsRequest,
    reply=ListRunsReply,
    description="Runs, newest first.",
)
RUN_EVENT = event_interface(
    "workflows.run.event",
    "1.0.0",
    payload=RunEvent,
    description="Progress of one run, published on agentbus.runs.<run_id>.events.",
)

INTERFACES = (
    WORKFLOWS_START,
    WORKFLOWS_GET,
    WORKFLOWS_CANCEL,
    WORKFLOWS_RESUME,
    WORKFLOWS_LIST,
    RUN_EVENT,
)
