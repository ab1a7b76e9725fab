"""Risk, approvals end to end, run-exactly-once, restarts, and the audit trail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from executor_helpers import Workspace

from agentbus.framework import AUDIT, ESCALATIONS, Bus, RemoteError
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    APPROVALS_LIST,
    TOOLS_EXECUTE,
    Approval,
    ApprovalRequired,
    Completed,
    DecideRequest,
    ExecuteRequest,
    ExecutionAudit,
    ListApprovalsRequest,
)
from agentbus.interfaces.metadata import AGENTBUS, parse_header
from agentbus.tool_executor.audit import AUDIT_SUBJECT, ESCALATION_SUBJECT

# Appends one line per run: how many times the command really ran. sh is a shell: the
# policy must allow shells, and each call is high risk.
COUNTER = ["sh", "-c", "echo ran >> runs.log; wc -l < runs.log"]


def policy(workspace: Workspace, **extra: Any) -> dict[str, Any]:
    return {
        "roots": [str(workspace.ws)],
        "tools": ["*"],
        "commands": ["sh", "echo"],
        "shell": True,
        "medium": "ask",
        **extra,
    }


@pytest.fixture
async def agent(workspace: Workspace, start_executor: Any, bus_as: Any) -> Bus:
    await start_executor({"policy": {"agent": policy(workspace)}})
    connected: Bus = await bus_as("agent")
    return connected


async def execute(bus: Bus, key: str | None = "k1", **arguments: Any) -> Any:
    request = ExecuteRequest(
        tool="shell.exec",
        arguments=arguments or {"argv": COUNTER},
        caller="agent",
        idempotency_key=key,
    )
    return (await bus.request(TOOLS_EXECUTE, request, timeout=30)).result


async def decide(bus: Bus, approval_id: str, decision: str) -> Approval:
    request = DecideRequest(approval_id=approval_id, decision=decision, decided_by="ada")  # type: ignore[arg-type]
    return (await bus.request(APPROVALS_DECIDE, request)).approval


async def test_approved_call_runs_exactly_once(
    agent: Bus, bus_as: Any, workspace: Workspace
) -> None:
    first = await execute(agent)
    assert isinstance(first, ApprovalRequired)
    assert first.risk == "high"
    assert first.idempotency_key == "k1"
    again = await execute(agent)
    assert isinstance(again, ApprovalRequired)
    assert again.approval_id == first.approval_id
    assert not (workspace.ws / "runs.log").exists()

    # the request is on the escalations stream, once
    escalation = await agent.js.get_last_msg(ESCALATIONS.name, ESCALATION_SUBJECT)
    published = Approval.model_validate_json(escalation.data)
    assert published.approval_id == first.approval_id
    assert published.status == "pending"
    fields = parse_header((escalation.headers or {})[AGENTBUS])
    assert fields["if"] == "tools.approval.requested@1.0.0"

    human = await bus_as("human")
    pending = await human.request(APPROVALS_LIST, ListApprovalsRequest(status="pending"))
    assert [a.approval_id for a in pending.approvals] == [first.approval_id]
    approved = await decide(human, first.approval_id, "approve")
    assert approved.status == "approved"
    assert approved.decided_by == "ada"

    # concurrent retries with the key: one runs, the others replay or see it running
    results = await asyncio.gather(*(execute(agent) for _ in range(3)), return_exceptions=True)
    completed = [r for r in results if isinstance(r, Completed)]
    assert completed
    assert all(r.content.strip() == "1" for r in completed)
    for other in results:
        if isinstance(other, RemoteError):
            assert other.code == "conflict"  # "still running; retry later"
    replay = await execute(agent)
    assert isinstance(replay, Completed)
    assert replay.replayed
    assert replay.content.strip() == "1"
    assert (workspace.ws / "runs.log").read_text() == "ran\n"
    executed = await human.request(APPROVALS_LIST, ListApprovalsRequest(status="executed"))
    assert [a.approval_id for a in executed.approvals] == [first.approval_id]


async def test_denied_call_is_refused_and_never_runs(
    agent: Bus, bus_as: Any, workspace: Workspace
) -> None:
    first = await execute(agent, key="deny-me")
    human = await bus_as("human")
    await decide(human, first.approval_id, "deny")
    with pytest.raises(RemoteError) as refused:
        await execute(agent, key="deny-me")
    assert refused.value.code == "forbidden"
    assert "denied by ada" in refused.value.reply.message
    with pytest.raises(RemoteError) as final:
        await decide(human, first.approval_id, "approve")
    assert final.value.code == "conflict"
    assert not (workspace.ws / "runs.log").exists()


async def test_a_caller_cannot_approve_itself_nor_reuse_a_key(agent: Bus) -> None:
    first = await execute(agent, key="mine")
    with pytest.raises(RemoteError) as own:
        await decide(agent, first.approval_id, "approve")
    assert own.value.code == "forbidden"
    with pytest.raises(RemoteError) as reused:
        await execute(agent, key="mine", argv=["echo", "something else"])
    assert reused.value.code == "conflict"


async def test_high_risk_always_asks_and_low_risk_runs(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    relaxed = policy(workspace, medium="run", shell=True, risk={"fs.list": "high"})  # noqa: S604
    await start_executor({"policy": {"agent": relaxed}})
    bus = await bus_as("agent")
    ran = await execute(bus, key=None, argv=["echo", "hi"])
    assert isinstance(ran, Completed)
    shell = await execute(bus, key=None, command="echo hi")
    assert isinstance(shell, ApprovalRequired)
    assert shell.risk == "high"
    assert shell.idempotency_key.startswith("auto-")
    raised = await bus.request(
        TOOLS_EXECUTE, ExecuteRequest(tool="fs.list", arguments={}, caller="agent")
    )
    assert isinstance(raised.result, ApprovalRequired)
    low = await bus.request(
        TOOLS_EXECUTE,
        ExecuteRequest(tool="fs.read", arguments={"path": "file.txt"}, caller="agent"),
    )
    assert isinstance(low.result, Completed)


async def test_approval_state_survives_a_restart(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    first_executor = await start_executor({"policy": {"agent": policy(workspace)}})
    bus = await bus_as("agent")
    first = await execute(bus, key="restart")
    await first_executor.stop()
    await start_executor({"policy": {"agent": policy(workspace)}})
    human = await bus_as("human")
    await decide(human, first.approval_id, "approve")
    done = await execute(bus, key="restart")
    assert isinstance(done, Completed)
    assert done.content.strip() == "1"


async def test_every_call_leaves_an_audit_record(agent: Bus) -> None:
    with pytest.raises(RemoteError):
        await agent.request(
            TOOLS_EXECUTE,
            ExecuteRequest(tool="fs.read", arguments={"path": "/etc"}, caller="agent"),
        )
    message = await agent.js.get_last_msg(AUDIT.name, AUDIT_SUBJECT)
    record = ExecutionAudit.model_validate_json(message.data)
    assert (record.caller, record.tool, record.decision, record.outcome) == (
        "agent", "fs.read", "allowed", "forbidden",  # the gate let it through; the path check not
    )  # fmt: skip
    assert record.source.startswith("agent/")
    assert len(record.arguments_digest) == 64
    await agent.request(
        TOOLS_EXECUTE,
        ExecuteRequest(tool="fs.read", arguments={"path": "file.txt"}, caller="agent"),
    )
    message = await agent.js.get_last_msg(AUDIT.name, AUDIT_SUBJECT)
    record = ExecutionAudit.model_validate_json(message.data)
    assert (record.decision, record.outcome, record.risk) == ("allowed", "completed", "low")
    assert record.duration_ms > 0
    with pytest.raises(RemoteError):
        await agent.request(TOOLS_EXECUTE, ExecuteRequest(tool="nope", caller="agent"))
    message = await agent.js.get_last_msg(AUDIT.name, AUDIT_SUBJECT)
    record = ExecutionAudit.model_validate_json(message.data)
    assert (record.decision, record.outcome, record.risk) == ("refused", "not_found", None)
