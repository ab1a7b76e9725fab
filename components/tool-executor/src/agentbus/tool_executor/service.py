"""The tool executor service: ``tools.list``, ``tools.execute`` and the approval interfaces.

Run it with ``agentbus serve agentbus.tool_executor.service:ToolExecutor`` (or
``agentbus up``); the policy file comes from ``AGENTBUS_TOOLS_POLICY`` (default
``tools.toml`` in the working folder).
"""

from __future__ import annotations

from typing import Any

from agentbus.framework import MessageContext, Service, ServiceError, handles
from agentbus.interfaces.catalog.tools import (
    APPROVAL_DECIDED,
    APPROVALS_DECIDE,
    APPROVALS_LIST,
    TOOLS_EXECUTE,
    TOOLS_LIST,
    DecideReply,
    DecideRequest,
    ExecuteReply,
    ExecuteRequest,
    ListApprovalsReply,
    ListApprovalsRequest,
    ListToolsReply,
    ListToolsRequest,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.approvals import ApprovalStore, RunStore, now
from agentbus.tool_executor.audit import COMPONENT
from agentbus.tool_executor.engine import Caller, Engine
from agentbus.tool_executor.errors import ToolError
from agentbus.tool_executor.mcp_import import McpImports
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.tools import BUILTIN


def _service_error(exc: ToolError) -> ServiceError:
    return ServiceError(exc.code, exc.message, **exc.details)


class ToolExecutor(Service):
    """Runs tools for agents under per-caller policies, with approvals and an audit trail."""

    name = COMPONENT
    version = "0.1.0"

    policy_file: PolicyFile | None = None
    """Set on a subclass (tests) to skip loading the policy file."""

    async def initialize(self) -> None:
        policies = self.policy_file or PolicyFile.load()
        self.imports = McpImports(policies.mcp_servers)
        imported = await self.imports.start()
        self.engine = Engine(
            [*BUILTIN, *imported],
            policies,
            self.bus,
            await ApprovalStore.open(self.bus.js),
            await RunStore.open(self.bus.js),
        )

    async def shutdown(self) -> None:
        await self.imports.stop()

    def _caller(self, ctx: MessageContext) -> Caller:
        meta = ctx.metadata
        return Caller(str(meta.source), str(meta.source), meta)

    @handles(TOOLS_LIST)
    async def list_tools(self, request: ListToolsRequest, ctx: MessageContext) -> ListToolsReply:
        try:
            self.engine.check_identity(request.caller, ctx.metadata.source.component)
        except ToolError as exc:
            raise _service_error(exc) from None
        return ListToolsReply(tools=self.engine.list_for(request.caller))

    @handles(TOOLS_EXECUTE)
    async def execute(self, request: ExecuteRequest, ctx: MessageContext) -> ExecuteReply:
        try:
            result = await self.engine.execute(request, self._caller(ctx))
        except ToolError as exc:
            raise _service_error(exc) from None
        return ExecuteReply(result=result)

    @handles(APPROVALS_LIST)
    async def list_approvals(
        self, request: ListApprovalsRequest, ctx: MessageContext
    ) -> ListApprovalsReply:
        return ListApprovalsReply(approvals=await self.engine.approvals.list(request.status))

    @handles(APPROVALS_DECIDE)
    async def decide(self, request: DecideRequest, ctx: MessageContext) -> DecideReply:
        store = self.engine.approvals
        found = await store.get(request.approval_id)
        if found is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"no approval {request.approval_id}; `agentbus approvals list` shows them",
            )
        approval = found[0]
        if ctx.metadata.source.component == approval.caller:
            raise ServiceError(ErrorCode.FORBIDDEN, "a caller cannot decide its own approval")
        changes: dict[str, Any] = {
            "status": "approved" if request.decision == "approve" else "denied",
            "decided_by": request.decided_by,
            "decided_at": now(),
            "note": request.note,
        }
        updated = await store.transition(request.approval_id, ("pending",), **changes)
        if (
            updated is None
            or updated.status != changes["status"]
            or (updated.decided_at != changes["decided_at"])
        ):
            status = updated.status if updated else "gone"
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"approval {request.approval_id} is already {status}; decisions are final",
                status=status,
            )
        await ctx.publish(APPROVAL_DECIDED, updated)
        return DecideReply(approval=updated)
