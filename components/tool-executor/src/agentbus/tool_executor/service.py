"""The tool executor service: ``tools.list``, ``tools.execute`` and the approval interfaces.

Run it with ``agentbus serve agentbus.tool_executor.service:ToolExecutor`` (or
``agentbus up``); the policy file comes from ``AGENTBUS_TOOLS_POLICY`` (default
``tools.toml`` in the working folder) and is read again whenever it changes
(every ``file_watch_interval`` seconds): a valid edit applies to calls that start
afterwards, an invalid one is logged and the previous policy stays in force.
Imported MCP servers are started once; changing them needs a restart.

This module is only the bus adapter: every decision is in
:class:`~agentbus.tool_executor.engine.Engine` (calls, policy reloads) and
:class:`~agentbus.tool_executor.approvals.ApprovalStore` (decisions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from agentbus.framework import MessageContext, Service, ServiceError, Settings, handles
from agentbus.framework.auth import Grants, grants
from agentbus.interfaces.catalog.tools import (
    APPROVAL_DECIDED,
    APPROVALS_DECIDE,
    APPROVALS_LIST,
    APPROVALS_WITHDRAW,
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
    WithdrawRequest,
)
from agentbus.tool_executor.approvals import APPROVALS_BUCKET, ApprovalStore
from agentbus.tool_executor.audit import AUDIT_SUBJECT, COMPONENT, ESCALATION_SUBJECT
from agentbus.tool_executor.engine import Caller, Engine
from agentbus.tool_executor.errors import ToolError
from agentbus.tool_executor.ledger import RUNS_BUCKET, ExecutionLedger
from agentbus.tool_executor.mcp_import import McpImports
from agentbus.tool_executor.policy import PolicyFile, policy_path
from agentbus.tool_executor.sandbox import sandbox
from agentbus.tool_executor.tools import BUILTIN

log = logging.getLogger("agentbus.tool_executor")


def _service_error(exc: ToolError) -> ServiceError:
    return ServiceError(exc.code, exc.message, **exc.details)


class ToolExecutor(Service):
    """Runs tools for agents under per-caller policies, with approvals and an audit trail."""

    name = COMPONENT
    emits = (APPROVAL_DECIDED,)

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> Grants:
        """Only this identity writes approvals and the run ledger, and publishes the
        executor's audit and escalation records."""
        return (
            grants.write_bucket(APPROVALS_BUCKET)
            | grants.write_bucket(RUNS_BUCKET)
            | grants.publish(AUDIT_SUBJECT, ESCALATION_SUBJECT)
        )

    version = "0.1.0"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        policies: PolicyFile | None = None,
        **service_kwargs: Any,
    ) -> None:
        """``policies`` (tests, embedding) replaces reading and watching the policy file;
        ``service_kwargs`` are :class:`Service`'s (``instance=``, ``name=``, ...)."""
        super().__init__(settings, **service_kwargs)
        self._fixed_policies = policies

    async def initialize(self) -> None:
        confined = await asyncio.to_thread(sandbox)  # probed once: a short bwrap run
        if confined.bwrap is None:
            log.warning(
                "tool processes run with resource limits only, not in a sandbox: %s; they "
                "see the whole file system this user may read (install bubblewrap)",
                confined.reason,
            )
        else:
            log.info("tool processes run in a sandbox: %s", confined.reason)
        approvals = await ApprovalStore.open(self.bus.js)
        ledger = await ExecutionLedger.open(self.bus.js, owner=self.instance)
        policies = self._fixed_policies
        if policies is None:
            # Watched before it is read, with no await in between until the engine exists:
            # an edit made meanwhile is simply loaded once more, never missed.
            path = policy_path()
            await self.watch_file(path, lambda: self.engine.reload(path))
            policies = PolicyFile.load()
            if not path.exists():
                log.warning(
                    "no policy file (%s does not exist): every caller may use nothing. Give "
                    "the executor one: copy components/tool-executor/tools.example.toml to "
                    "%s, or set AGENTBUS_TOOLS_POLICY to its path; a file created at %s "
                    "later is read while the executor runs",
                    path,
                    path.resolve(),
                    path,
                )
        self.engine = Engine(BUILTIN, policies, self.bus, approvals, ledger)
        self.imports = McpImports(policies.mcp_servers)
        for imported in await self.imports.start():
            self.engine.add(imported)

    async def shutdown(self) -> None:
        await self.imports.stop()

    def _caller(self, ctx: MessageContext) -> Caller:
        # The component is the identity the NATS server let through (the subject's last
        # token), never the src= of the header; the instance (for the audit) is the sender's
        # word and decides nothing.
        return Caller(f"{ctx.caller}/{ctx.metadata.source.instance}", ctx.metadata)

    @handles(TOOLS_LIST)
    async def list_tools(self, request: ListToolsRequest, ctx: MessageContext) -> ListToolsReply:
        try:
            tools = self.engine.list_for(request.caller, self._caller(ctx))
        except ToolError as exc:
            raise _service_error(exc) from None
        return ListToolsReply(tools=tools)

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
        try:
            updated = await self.engine.approvals.decide(
                request.approval_id,
                request.decision,
                decided_by=request.decided_by,
                decider=ctx.caller,
                note=request.note,
            )
        except ToolError as exc:
            raise _service_error(exc) from None
        await ctx.publish(APPROVAL_DECIDED, updated)
        return DecideReply(approval=updated)

    @handles(APPROVALS_WITHDRAW)
    async def withdraw(self, request: WithdrawRequest, ctx: MessageContext) -> DecideReply:
        try:
            updated = await self.engine.approvals.withdraw(
                request.approval_id,
                withdrawer=ctx.caller,
                relays=tuple(self.engine.policies.executor.relays),
                reason=request.reason,
            )
        except ToolError as exc:
            raise _service_error(exc) from None
        await ctx.publish(APPROVAL_DECIDED, updated)
        return DecideReply(approval=updated)
