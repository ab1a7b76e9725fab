"""Approvals: a run parks without holding a slot, shows in `agentbus approvals`, and continues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from runner_helpers import FakeModel, Received, answer, tool_results, wait_status

from agentbus.framework import Bus, RemoteError
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    APPROVALS_LIST,
    APPROVALS_WITHDRAW,
    DecideRequest,
    ListApprovalsRequest,
    WithdrawRequest,
)
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_CANCEL,
    WORKFLOWS_RESUME,
    WORKFLOWS_START,
    CancelRequest,
    ResumeRequest,
    StartRequest,
)
from agentbus.workflow_runner import RunContext, WorkflowApp, step, step_key


def write_then_report(received: Received) -> Any:
    results = tool_results(received)
    if not results:
        write = {"path": "out.txt", "content": "approved content"}
        return answer(received, "", [("call_w", "fs_write", write)])
    return answer(received, f"tool said: {results[0]['content']}")


async def start_writing(bus: Bus) -> str:
    data = {"prompt": "write it", "tools": ["fs.write"], "model": "fast", "caller": "agent"}
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))
    return reply.run_id


async def test_approving_at_the_executor_continues_the_run(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    fake_model.brain = write_then_report
    run_id = await start_writing(bus)

    run = await wait_status(bus, run_id, "waiting_approval", "failed")
    assert run.status == "waiting_approval", run.error
    [pending] = run.pending_approvals
    assert (pending.tool_call_id, pending.tool) == ("call_w", "fs.write")
    assert pending.idempotency_key == f"{run_id}:3"  # catalog, tools.list, model, tool
    assert not (workspace / "out.txt").exists()
    # the request is where `agentbus approvals list` looks, and the run holds no slot
    approvals = await bus.request(APPROVALS_LIST, ListApprovalsRequest(status="pending"))
    assert [a.approval_id for a in approvals.approvals] == [pending.approval_id]
    assert stack.executor.running == {}

    await bus.request(
        APPROVALS_DECIDE,
        DecideRequest(approval_id=pending.approval_id, decision="approve", decided_by="ada"),
    )

    run = await wait_status(bus, run_id, "finished", "failed")
    assert run.status == "finished", run.error
    assert (workspace / "out.txt").read_text(encoding="utf-8") == "approved content"
    assert [s.name for s in run.steps].count("model") == 2  # the first turn was not repeated
    assert len(fake_model.chat_requests()) == 2
    assert run.generation == 1
    decided = await bus.request(APPROVALS_LIST, ListApprovalsRequest())
    assert [(a.status, a.decided_by) for a in decided.approvals] == [("executed", "ada")]


async def test_deny_elsewhere_gives_the_model_the_denial(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    fake_model.brain = write_then_report
    run_id = await start_writing(bus)
    run = await wait_status(bus, run_id, "waiting_approval", "failed")
    approval = run.pending_approvals[0].approval_id

    # decided with `agentbus approvals deny`, not through the runner: the event continues it
    await bus.request(
        APPROVALS_DECIDE,
        DecideRequest(approval_id=approval, decision="deny", decided_by="bob", note="no writes"),
    )

    run = await wait_status(bus, run_id, "finished", "failed")
    assert run.status == "finished", run.error
    assert not (workspace / "out.txt").exists()
    assert isinstance(run.result, dict)
    assert "denied by bob: no writes" in run.result["text"]
    last = tool_results(fake_model.chat_requests()[-1])[0]
    assert last["content"].startswith("error (forbidden)")


async def test_resume_refuses_decisions_and_says_who_decides(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    fake_model.brain = write_then_report
    run_id = await start_writing(bus)
    await wait_status(bus, run_id, "waiting_approval")

    with pytest.raises(RemoteError) as refused:
        await bus.request(
            WORKFLOWS_RESUME, ResumeRequest(run_id=run_id, decisions={"call_w": "approve"})
        )

    assert refused.value.code == "forbidden"
    assert "tools.approvals.decide" in refused.value.reply.message
    assert "agentbus runs resume" in refused.value.reply.message
    run = await wait_status(bus, run_id, "waiting_approval")
    assert run.pending_approvals[0].decision is None
    assert not (workspace / "out.txt").exists()
    approvals = await bus.request(APPROVALS_LIST, ListApprovalsRequest(status="pending"))
    assert len(approvals.approvals) == 1  # nothing was decided


async def test_a_parked_run_is_cancelled_at_once(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    fake_model.brain = write_then_report
    run_id = await start_writing(bus)
    await wait_status(bus, run_id, "waiting_approval")

    reply = await bus.request(WORKFLOWS_CANCEL, CancelRequest(run_id=run_id))

    assert reply.status == "cancelled"
    resumed = await bus.request(WORKFLOWS_RESUME, ResumeRequest(run_id=run_id))
    assert resumed.status == "cancelled"
    assert not (workspace / "out.txt").exists()
    # Its approval was withdrawn at the executor: not left pending, and approving it later
    # is refused instead of silently doing nothing.
    [withdrawn] = (await bus.request(APPROVALS_LIST, ListApprovalsRequest())).approvals
    assert withdrawn.status == "denied"
    assert withdrawn.decided_by == "workflow-runner (withdrawn)"
    assert withdrawn.note is not None
    assert run_id in withdrawn.note
    with pytest.raises(RemoteError, match="already denied") as refused:
        await bus.request(
            APPROVALS_DECIDE,
            DecideRequest(approval_id=withdrawn.approval_id, decision="approve", decided_by="ada"),
        )
    assert refused.value.code == "conflict"
    assert not (workspace / "out.txt").exists()


async def test_only_the_caller_or_a_relay_may_withdraw_an_approval(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    fake_model.brain = write_then_report
    run_id = await start_writing(bus)
    run = await wait_status(bus, run_id, "waiting_approval")
    [pending] = run.pending_approvals

    with pytest.raises(RemoteError) as refused:  # the test's bus is neither agent nor a relay
        await bus.request(
            APPROVALS_WITHDRAW, WithdrawRequest(approval_id=pending.approval_id, reason="mine")
        )

    assert refused.value.code == "forbidden"
    [still] = (await bus.request(APPROVALS_LIST, ListApprovalsRequest())).approvals
    assert still.status == "pending"


# -- a custom workflow: function steps are not repeated when the run continues ------------

CALLS: list[str] = []
KEYS: list[str | None] = []
custom = WorkflowApp("custom-test")


class CustomInput(BaseModel):
    name: str


@step
async def greet(name: str) -> str:
    CALLS.append(name)
    KEYS.append(step_key())
    return f"hello {name}"


@custom.workflow("greet_and_write", input=CustomInput)
async def greet_and_write(run: RunContext, data: CustomInput) -> dict[str, Any]:
    greeting = await greet(data.name)
    written = await run.tool(
        "fs.write", {"path": "greeting.txt", "content": greeting}, caller="agent"
    )
    return {"greeting": greeting, "written": written.status}


async def test_a_custom_workflow_replays_its_steps_after_approval(
    gateway: Any, executor: Any, start_runner: Any, bus: Bus, workspace: Path
) -> None:
    CALLS.clear()
    KEYS.clear()
    await start_runner(apps=(custom,))
    reply = await bus.request(
        WORKFLOWS_START, StartRequest(workflow="greet_and_write", input={"name": "Ada"})
    )
    run = await wait_status(bus, reply.run_id, "waiting_approval", "failed")
    await bus.request(
        APPROVALS_DECIDE,
        DecideRequest(
            approval_id=run.pending_approvals[0].approval_id, decision="approve", decided_by="ada"
        ),
    )

    run = await wait_status(bus, reply.run_id, "finished", "failed")
    assert run.result == {"greeting": "hello Ada", "written": "completed"}
    assert CALLS == ["Ada"]  # replayed from the record, not called again
    keys = KEYS
    assert keys == [f"{reply.run_id}:0"]  # the step's own key, to pass on to its effects
    assert step_key() is None  # outside a step
    assert (workspace / "greeting.txt").read_text(encoding="utf-8") == "hello Ada"
    assert [(s.name, s.kind) for s in run.steps] == [
        ("greet", "function"),
        ("tool:fs.write", "tool"),
    ]
