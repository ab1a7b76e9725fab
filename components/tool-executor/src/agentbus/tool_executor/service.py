"""The tool executor service: ``tools.list``, ``tools.execute`` and the approval interfaces.

Run it with ``agentbus serve agentbus.tool_executor.service:ToolExecutor`` (or
``agentbus up``); the policy file comes from ``AGENTBUS_TOOLS_POLICY`` (default
``tools.toml`` in the working folder) and is read again whenever it changes
(every ``file_watch_interval`` seconds): a valid edit applies to calls that start
afterwards, an invalid one is logged and the previous policy stays in force.
Imported MCP servers are started once; changing them needs a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any

from agentbus.framework import MessageContext, Service, ServiceError, handles
from agentbus.framework.errors import ConfigError
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
from agentbus.tool_executor.policy import (
    PolicyFile,
    describe_changes,
    mcp_server_changes,
    policy_path,
)
from agentbus.tool_executor.tools import BUILTIN

log = logging.getLogger("agentbus.tool_executor")


def _service_error(exc: ToolError) -> ServiceError:
    return ServiceError(exc.code, exc.message, **exc.details)


class ToolExecutor(Service):
    """Runs tools for agents under per-caller policies, with approvals and an audit trail."""

    name = COMPONENT
    version = "0.1.0"

    policy_file: PolicyFile | None = None
    """Set on a subclass (tests) to skip loading (and watching) the policy file."""

    async def initialize(self) -> None:
        approvals = await ApprovalStore.open(self.bus.js)
        runs = await RunStore.open(self.bus.js)
        policies = self.policy_file
        if policies is None:
            # Watched before it is read, with no await in between until the engine exists:
            # an edit made meanwhile is simply loaded once more, never missed.
            path = policy_path()
            await self.watch_file(path, functools.partial(self._reload_policies, path))
            policies = PolicyFile.load()
        self.engine = Engine(BUILTIN, policies, self.bus, approvals, runs)
        self.imports = McpImports(policies.mcp_servers)
        for imported in await self.imports.start():
            self.engine.add(imported)

    async def shutdown(self) -> None:
        await self.imports.stop()

    async def _reload_policies(self, path: Path) -> None:
        """Apply the edited policy file, except its [mcp_servers] (imported at start only)."""
        try:
            new = await asyncio.to_thread(PolicyFile.load, path)
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            log.error(
                "policy file %s changed but was not applied, the previous policy stays in "
                "force: %s. Fix the file; it is read again when it changes.",
                path,
                exc,
            )
            return
        old = self.engine.policies
        servers = mcp_server_changes(old, new)
        if servers:
            log.warning(
                "policy file %s changes MCP servers (%s): restart the executor to apply them; "
                "the servers imported at start stay as they were",
                path,
                ", ".join(servers),
            )
            new = new.model_copy(update={"mcp_servers": old.mcp_servers})  # what runs
        self.engine.use(new)
        log.info("policy file %s reloaded: %s", path, describe_changes(old, new))

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
