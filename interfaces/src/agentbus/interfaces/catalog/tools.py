"""Tools: what an agent may do to the world, under a policy, with approvals and an audit trail.

``tools.list`` and ``tools.execute`` are served by the tool executor. A call
either completes, or needs a human decision first (``approval_required``);
refusals (policy, unknown tool, bad arguments, a tool that cannot do what was
asked) are error replies with a code (``forbidden``, ``not_found``,
``invalid``, ``schema_violation``, ``payload_too_large``, ``conflict``).

Approval requests are published on the escalations stream
(``agentbus.escalations.tool-executor``), decisions as events; each execution
leaves an audit record on ``agentbus.audit.tool-executor.execution``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, JsonValue

from agentbus.interfaces.message import BusMessage, event_interface, request_interface

_CALLER = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_-]+$",
    description="The identity whose policy applies (normally the calling component).",
)


class Risk(StrEnum):
    """How much harm a call can do: low runs, medium runs or asks (by policy), high asks."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ToolSpec(BusMessage):
    """One tool a caller may use."""

    name: str = Field(description="Dotted name, e.g. fs.read or mcp.<server>.<tool>.")
    description: str
    risk: Risk = Field(description="The risk of a call before arguments are seen.")
    input_schema: dict[str, JsonValue] = Field(description="JSON Schema of the arguments.")
    source: str = Field(default="builtin", description="builtin, or mcp:<server>.")


class ListToolsRequest(BusMessage):
    caller: str = _CALLER


class ListToolsReply(BusMessage):
    tools: list[ToolSpec]


class ExecuteRequest(BusMessage):
    tool: str = Field(min_length=1, max_length=200)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    caller: str = _CALLER
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Same key, same call: an approved call runs once; a finished one replays.",
    )


class Completed(BusMessage):
    """The tool ran; ``content`` is what it produced (capped), ``data`` its structured result."""

    status: Literal["completed"] = "completed"
    tool: str
    content: str
    truncated: bool = Field(default=False, description="Output was cut at the policy's cap.")
    exit_code: int | None = Field(default=None, description="For processes.")
    timed_out: bool = False
    data: dict[str, JsonValue] = Field(default_factory=dict)
    duration_ms: float
    replayed: bool = Field(
        default=False, description="The result of an earlier run with the same idempotency key."
    )


class ApprovalRequired(BusMessage):
    """The call waits for a decision; retry with the same idempotency key once approved."""

    status: Literal["approval_required"] = "approval_required"
    tool: str
    approval_id: str
    risk: Risk
    idempotency_key: str = Field(description="Retry with this key once the call is approved.")
    reason: str


Outcome = Annotated[Completed | ApprovalRequired, Field(discriminator="status")]


class ExecuteReply(BusMessage):
    result: Outcome


ApprovalStatus = Literal["pending", "approved", "denied", "executed"]


class Approval(BusMessage):
    """A call waiting for (or given) a human decision."""

    approval_id: str
    caller: str
    tool: str
    arguments: dict[str, JsonValue]
    arguments_digest: str = Field(description="sha256 of the canonical JSON of the arguments.")
    idempotency_key: str
    risk: Risk
    reason: str
    status: ApprovalStatus
    requested_at: str = Field(description="ISO 8601, UTC.")
    decided_at: str | None = None
    decided_by: str | None = None
    note: str | None = None


class ListApprovalsRequest(BusMessage):
    status: ApprovalStatus | None = Field(default=None, description="Only these; all when unset.")


class ListApprovalsReply(BusMessage):
    approvals: list[Approval]


class DecideRequest(BusMessage):
    approval_id: str = Field(min_length=1, max_length=64)
    decision: Literal["approve", "deny"]
    decided_by: str = Field(min_length=1, max_length=200, description="Who decides (for audit).")
    note: str | None = Field(default=None, max_length=2000)


class DecideReply(BusMessage):
    approval: Approval


class WithdrawRequest(BusMessage):
    """The caller that asked for an approval no longer wants the call (its run was
    cancelled): a pending approval becomes ``denied``, decided by that caller."""

    approval_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500, description="Why; kept as the note.")


class ExecutionAudit(BusMessage):
    """One ``tools.execute`` call, whatever became of it."""

    caller: str
    source: str = Field(description="The sending component/instance from the message metadata.")
    tool: str
    arguments_digest: str
    idempotency_key: str | None
    risk: Risk | None
    decision: Literal["allowed", "approval_required", "approved", "denied", "refused"]
    outcome: str = Field(description="completed, replayed, pending, or the error code.")
    exit_code: int | None = None
    duration_ms: float
    at: str = Field(description="ISO 8601, UTC.")


TOOLS_LIST = request_interface(
    "tools.list",
    "1.0.0",
    request=ListToolsRequest,
    reply=ListToolsReply,
    description="The tools a caller may use, with the JSON Schemas of their arguments.",
)
TOOLS_EXECUTE = request_interface(
    "tools.execute",
    "1.0.0",
    request=ExecuteRequest,
    reply=ExecuteReply,
    description="Run a tool under the caller's policy: completed, or approval_required.",
)
APPROVALS_LIST = request_interface(
    "tools.approvals.list",
    "1.0.0",
    request=ListApprovalsRequest,
    reply=ListApprovalsReply,
    description="Approval requests of the tool executor, newest last.",
)
APPROVALS_DECIDE = request_interface(
    "tools.approvals.decide",
    "1.0.0",
    request=DecideRequest,
    reply=DecideReply,
    description="Approve or deny a pending tool call.",
)
APPROVALS_WITHDRAW = request_interface(
    "tools.approvals.withdraw",
    "1.0.0",
    request=WithdrawRequest,
    reply=DecideReply,
    description="The caller (or its relay) takes back its own pending approval: denied, so a "
    "later decision is refused instead of silently doing nothing.",
)
APPROVAL_REQUESTED = event_interface(
    "tools.approval.requested",
    "1.0.0",
    payload=Approval,
    description="A tool call waits for a decision; published on the escalations stream.",
)
APPROVAL_DECIDED = event_interface(
    "tools.approval.decided",
    "1.0.0",
    payload=Approval,
    description="A pending tool call was approved or denied.",
)
EXECUTION_AUDITED = event_interface(
    "tools.execution.audited",
    "1.0.0",
    payload=ExecutionAudit,
    description="One tools.execute call; published on agentbus.audit.tool-executor.execution.",
)

INTERFACES = (
    TOOLS_LIST,
    TOOLS_EXECUTE,
    APPROVALS_LIST,
    APPROVALS_DECIDE,
    APPROVALS_WITHDRAW,
    APPROVAL_REQUESTED,
    APPROVAL_DECIDED,
    EXECUTION_AUDITED,
)
