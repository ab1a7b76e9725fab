"""The decision path of every call: identity, policy, arguments, risk, approval, run once, audit.

::

    execute(caller, tool, arguments, key)
      unknown tool ............................ not_found
      tool not in the caller's policy ......... forbidden
      arguments too large / off-schema ........ payload_too_large / schema_violation
      risk = max(tool's risk for these arguments, the policy's raise)
      high, or medium with medium = "ask" ..... approval: pending → approval_required,
                                                 denied → forbidden, approved → run
      with an idempotency key ................. claimed once in KV; later calls replay
      run the tool ............................ completed, or the tool's error
      every outcome ........................... one audit record

The engine holds no bus subscriptions: :mod:`~agentbus.tool_executor.service` serves
it on the bus (and, through the bus, the MCP server); the benchmark calls the tool
functions directly to measure what the path adds. It only publishes, through
:mod:`~agentbus.tool_executor.audit`.

The policies can be replaced while calls run (:meth:`Engine.use`, and
:meth:`Engine.reload` when the policy file changes): each call reads them once when
it starts and keeps that policy to the end, so a call never mixes an old and a new
policy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentbus.framework import Bus, ConfigError
from agentbus.interfaces.catalog.tools import (
    Approval,
    ApprovalRequired,
    Completed,
    ExecuteRequest,
    ExecutionAudit,
    Risk,
    ToolSpec,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.interfaces.metadata import Metadata
from agentbus.interfaces.validation import schema_violation
from agentbus.tool_executor.approvals import ApprovalStore, approval_id, digest, now
from agentbus.tool_executor.audit import publish_audit, publish_escalation
from agentbus.tool_executor.declaration import Tool, ToolContext
from agentbus.tool_executor.errors import Refused, ToolError, ToolFailed
from agentbus.tool_executor.ledger import ExecutionLedger
from agentbus.tool_executor.policy import (
    Policy,
    PolicyFile,
    describe_changes,
    mcp_server_changes,
)

log = logging.getLogger("agentbus.tool_executor")

GRACE = 5.0
"""Seconds a call may run past its policy timeout (process teardown, replies)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The bus source that carried a call (``component/instance``), and its metadata.

    The identity the call claims is the request's ``caller`` field; the engine checks it
    against :attr:`component`.
    """

    source: str
    metadata: Metadata | None = None

    @property
    def component(self) -> str:
        return self.source.split("/", 1)[0]


class Engine:
    """Tools, policies and durable state; one per service instance."""

    def __init__(
        self,
        tools: Iterable[Tool],
        policies: PolicyFile,
        bus: Bus,
        approvals: ApprovalStore,
        ledger: ExecutionLedger,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for declared in tools:
            self.add(declared)
        self.policies = policies
        self.bus = bus
        self.approvals = approvals
        self.ledger = ledger

    def add(self, declared: Tool) -> None:
        if declared.name in self.tools:
            raise ValueError(f"tool {declared.name} is declared twice")
        self.tools[declared.name] = declared

    def use(self, policies: PolicyFile) -> None:
        """Serve calls that start from now on under ``policies``; running calls keep theirs."""
        self.policies = policies

    async def reload(self, path: Path) -> None:
        """Apply the edited policy file at ``path``, except its [mcp_servers] (imported at
        start only); an invalid file is logged and the current policies stay."""
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
        old = self.policies
        servers = mcp_server_changes(old, new)
        if servers:
            log.warning(
                "policy file %s changes MCP servers (%s): restart the executor to apply them; "
                "the servers imported at start stay as they were",
                path,
                ", ".join(servers),
            )
            new = new.model_copy(update={"mcp_servers": old.mcp_servers})  # what runs
        self.use(new)
        log.info("policy file %s reloaded: %s", path, describe_changes(old, new))

    @staticmethod
    def _check_identity(policies: PolicyFile, claimed: str, source_component: str) -> None:
        """The caller field must name the sending component, unless the sender is a relay."""
        if claimed != source_component and source_component not in policies.executor.relays:
            raise Refused(
                f"component {source_component!r} may not call as {claimed!r}: send as that "
                "component, or list the sender under [executor] relays in the policy file"
            )

    def list_for(self, caller: str, via: Caller) -> list[ToolSpec]:
        """The tools ``caller``'s policy allows, at their risk for it; ``Refused`` when the
        sender may not speak for ``caller``."""
        policies = self.policies
        self._check_identity(policies, caller, via.component)
        policy = policies.for_caller(caller)
        return [
            t.spec(policy.risk_for(t.name, t.risk))
            for name, t in sorted(self.tools.items())
            if policy.allows_tool(name)
        ]

    async def execute(
        self, request: ExecuteRequest, caller: Caller
    ) -> Completed | ApprovalRequired:
        started = time.perf_counter()
        arguments_digest = digest(request.arguments)
        risk: Risk | None = None
        decision = "refused"
        outcome = "internal"
        exit_code: int | None = None
        try:
            policies = self.policies  # this call's policy, even if the file changes meanwhile
            self._check_identity(policies, request.caller, caller.component)
            policy = policies.for_caller(request.caller)
            declared = self._tool(request.tool, policy)
            args = self._parse(declared, request.arguments, policy)
            if declared.precheck is not None:
                declared.precheck(args, policy)
            risk = policy.risk_for(declared.name, declared.call_risk(args))
            key = request.idempotency_key
            if risk is Risk.HIGH or (risk is Risk.MEDIUM and policy.medium == "ask"):
                key = key or f"auto-{arguments_digest[:32]}"
                approval = await self._approval(request, key, risk, arguments_digest, caller)
                if approval.status == "pending":
                    decision, outcome = "approval_required", "pending"
                    return ApprovalRequired(
                        tool=declared.name,
                        approval_id=approval.approval_id,
                        risk=risk,
                        idempotency_key=key,
                        reason=approval.reason,
                    )
                if approval.status == "denied":
                    decision = "denied"
                    raise Refused(
                        f"approval {approval.approval_id} was denied by {approval.decided_by}"
                        + (f": {approval.note}" if approval.note else ""),
                        approval_id=approval.approval_id,
                    )
                decision = "approved"
            else:
                decision = "allowed"
            result = await self._run_once(declared, args, request, key, policy, arguments_digest)
            if decision == "approved":
                await self.approvals.transition(
                    approval_id(request.caller, key or ""), ("approved",), status="executed"
                )
            outcome = "replayed" if result.replayed else "completed"
            exit_code = result.exit_code
            return result
        except ToolError as exc:
            outcome = str(exc.code)
            raise
        finally:
            await publish_audit(
                self.bus,
                ExecutionAudit(
                    caller=request.caller,
                    source=caller.source,
                    tool=request.tool,
                    arguments_digest=arguments_digest,
                    idempotency_key=request.idempotency_key,
                    risk=risk,
                    decision=decision,
                    outcome=outcome,
                    exit_code=exit_code,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    at=now(),
                ),
                caller.metadata,
            )

    def _tool(self, name: str, policy: Policy) -> Tool:
        declared = self.tools.get(name)
        if declared is None:
            raise ToolFailed(
                f"no tool named {name!r}; `tools.list` shows the tools you may use",
                code=ErrorCode.NOT_FOUND,
            )
        if not policy.allows_tool(name):
            raise Refused(f"this caller's policy does not allow the tool {name}")
        return declared

    @staticmethod
    def _parse(declared: Tool, arguments: dict[str, Any], policy: Policy) -> Any:
        size = len(json.dumps(arguments, ensure_ascii=False).encode("utf-8"))
        if size > policy.max_argument_bytes:
            raise ToolFailed(
                f"the arguments are {size} bytes; this caller may send at most "
                f"{policy.max_argument_bytes}",
                code=ErrorCode.PAYLOAD_TOO_LARGE,
            )
        try:
            return declared.parse(arguments)
        except ValidationError as exc:
            reply = schema_violation(exc, f"the arguments do not match {declared.name}'s schema")
            raise ToolFailed(reply.message, code=reply.code, **reply.details) from None

    async def _approval(
        self, request: ExecuteRequest, key: str, risk: Risk, arguments_digest: str, caller: Caller
    ) -> Approval:
        wanted = Approval(
            approval_id=approval_id(request.caller, key),
            caller=request.caller,
            tool=request.tool,
            arguments=request.arguments,
            arguments_digest=arguments_digest,
            idempotency_key=key,
            risk=risk,
            reason=f"{request.tool} is {risk} risk for {request.caller}",
            status="pending",
            requested_at=now(),
        )
        approval, created = await self.approvals.create(wanted)
        if approval.arguments_digest != arguments_digest or approval.tool != request.tool:
            raise ToolFailed(
                f"idempotency key {key!r} was used for a different call; use a new key",
                code=ErrorCode.CONFLICT,
            )
        if created:
            await publish_escalation(self.bus, approval, caller.metadata)
        return approval

    async def _run_once(
        self,
        declared: Tool,
        args: Any,
        request: ExecuteRequest,
        key: str | None,
        policy: Policy,
        arguments_digest: str,
    ) -> Completed:
        if key is None:
            return await self._run(declared, args, request.caller, policy)
        return await self.ledger.run_once(
            request.caller,
            key,
            arguments_digest,
            lambda: self._run(declared, args, request.caller, policy),
        )

    async def _run(self, declared: Tool, args: Any, caller: str, policy: Policy) -> Completed:
        ctx = ToolContext(caller, policy, deadline=time.monotonic() + policy.timeout)
        started = time.perf_counter()
        try:
            result = await declared.function(args, ctx)
        except OSError as exc:
            raise ToolFailed(f"{declared.name} failed: {exc.strerror or exc}") from None
        return Completed(
            tool=declared.name,
            content=result.content,
            truncated=result.truncated,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            data=result.data,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
