"""The tool loop end to end: real NATS, the real tool executor, the gateway with a fake model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runner_helpers import (
    FakeModel,
    Received,
    answer,
    get_run,
    messages,
    run_events,
    tool_results,
    wait_status,
)

from agentbus.framework import Bus, RemoteError
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_CANCEL,
    WORKFLOWS_LIST,
    WORKFLOWS_START,
    CancelRequest,
    ListRunsRequest,
    StartRequest,
)


async def start(bus: Bus, workflow: str = "tool_loop", **data: Any) -> str:
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow=workflow, input=data))
    assert reply.status == "queued"
    assert reply.events_subject == f"agentbus.runs.{reply.run_id}.events"
    return reply.run_id


def read_then_edit(received: Received) -> Any:
    """Turn 1 reads notes.txt, turn 2 edits it, turn 3 reports."""
    done = tool_results(received)
    if not done:
        return answer(received, "Reading.", [("call_1", "fs_read", {"path": "notes.txt"})])
    if len(done) == 1:
        edit = {"path": "notes.txt", "search": "red", "replace": "blue"}
        return answer(received, "", [("call_2", "fs_edit", edit)])
    return answer(received, "Changed the colour to blue.")


async def test_a_tool_loop_reads_and_edits_a_file_and_stops(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    fake_model.brain = read_then_edit

    run_id = await start(bus, prompt="Make the colour blue.", tools=["fs.*"], model="fast")
    run = await wait_status(bus, run_id, "finished", "failed")

    assert run.status == "finished", run.error
    assert (workspace / "notes.txt").read_text(encoding="utf-8") == "colour: blue\nsize: big\n"
    assert run.result == {
        "text": "Changed the colour to blue.",
        "stop_reason": "no_tool_calls",
        "turns": 3,
        "tool_calls": 2,
        "usage": {"input_tokens": 36, "output_tokens": 21},
        "cost": 0.0,
    }
    names = [s.name for s in run.steps]
    assert names == [
        "model.catalog",
        "tools.list",
        "model",
        "tool:fs.read",
        "model",
        "tool:fs.edit",
        "model",
    ]
    assert [s.idempotency_key for s in run.steps] == [f"{run_id}:{i}" for i in range(7)]
    # the model saw the file's content as the result of its call, with the tool's name
    third = fake_model.chat_requests()[1]
    assert tool_results(third)[0]["tool_call_id"] == "call_1"
    assert "colour: red" in tool_results(third)[0]["content"]
    assert {t["function"]["name"] for t in (third.json or {})["tools"]} >= {"fs_read", "fs_edit"}

    kinds = [e.event.kind for e in await run_events(bus, run_id)]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "finished"
    assert "text" in kinds  # streamed deltas
    assert kinds.count("tool_call") == kinds.count("tool_result") == 2
    assert kinds.count("step_started") == kinds.count("step_finished") == 7


async def test_a_refused_tool_call_is_given_to_the_model(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    def brain(received: Received) -> Any:
        if not tool_results(received):
            return answer(received, "", [("c1", "fs_read", {"path": "/etc/passwd"})])
        return answer(received, "Could not read it.")

    fake_model.brain = brain
    run = await wait_status(
        bus, await start(bus, prompt="x", tools=["fs.read"], model="fast"), "finished", "failed"
    )
    assert run.status == "finished"
    result = tool_results(fake_model.chat_requests()[-1])[0]["content"]
    assert result.startswith("error (forbidden)")


async def test_max_turns_fails_the_run(stack: Any, bus: Bus, fake_model: FakeModel) -> None:
    fake_model.brain = lambda r: answer(
        r, "", [(f"c{len(messages(r))}", "fs_read", {"path": "notes.txt"})]
    )

    run_id = await start(bus, prompt="loop", tools=["fs.read"], model="fast", max_turns=2)
    run = await wait_status(bus, run_id, "finished", "failed")

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "max_turns"
    assert run.error.details == {"turns": 2, "tool_calls": 2}
    assert len(fake_model.chat_requests()) == 2


async def test_timeout_fails_the_run_without_waiting_for_the_model(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    fake_model.brain = lambda r: answer(r, "late", delay=5.0)

    run_id = await start(bus, prompt="slow", model="fast", context_budget=1000, timeout=0.5)
    run = await wait_status(bus, run_id, "finished", "failed", timeout=4.0)

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "timeout"
    assert run.elapsed_seconds < 3.0


async def test_stop_conditions_named_tool_and_token_budget(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    fake_model.brain = lambda r: answer(
        r, "", [(f"c{len(messages(r))}", "fs_list", {"path": "."})], usage=(100, 50)
    )
    by_tool = await start(bus, prompt="a", tools=["fs.*"], model="fast", stop_on_tools=["fs.list"])
    by_tokens = await start(
        bus, prompt="b", tools=["fs.*"], model="fast", budget={"max_tokens": 400}
    )
    by_cost = await start(
        bus,
        prompt="c",
        tools=["fs.*"],
        model="fast",
        budget={"max_cost": 0.0015, "input_price": 5.0, "output_price": 10.0},
    )

    first = await wait_status(bus, by_tool, "finished", "failed")
    second = await wait_status(bus, by_tokens, "finished", "failed")
    third = await wait_status(bus, by_cost, "finished", "failed")

    assert isinstance(first.result, dict)
    assert first.result["stop_reason"] == "tool_called"
    assert first.result["turns"] == 1
    assert isinstance(second.result, dict)
    assert second.result["stop_reason"] == "token_budget"
    assert second.result["turns"] == 3  # 150, 300, 450 tokens
    assert isinstance(third.result, dict)
    assert third.result["stop_reason"] == "cost_budget"
    assert third.result["turns"] == 2  # 0.001 per turn
    assert third.result["cost"] == 0.002


async def test_cancel_stops_a_running_run(stack: Any, bus: Bus, fake_model: FakeModel) -> None:
    fake_model.brain = lambda r: answer(r, "never", delay=10.0)
    run_id = await start(bus, prompt="slow", model="fast", context_budget=1000)
    await wait_status(bus, run_id, "running")

    reply = await bus.request(WORKFLOWS_CANCEL, CancelRequest(run_id=run_id, reason="enough"))

    assert reply.status == "cancelled"
    run = await get_run(bus, run_id)
    assert run.status == "cancelled"
    assert run.error is not None
    assert (run.error.code, run.error.message) == ("cancelled", "enough")
    assert len(fake_model.chat_requests()) == 1  # it was cancelled in the middle of the call
    events = await run_events(bus, run_id)
    assert events[-1].event.kind == "cancelled"
    again = await bus.request(WORKFLOWS_CANCEL, CancelRequest(run_id=run_id))
    assert again.status == "cancelled"


async def test_invalid_input_is_a_structured_error(stack: Any, bus: Bus) -> None:
    with pytest.raises(RemoteError) as caught:
        await start(bus, prompt=5, max_turns=0, colour="red")
    error = caught.value
    assert error.code == "schema_violation"
    assert "ToolLoopInput" in error.reply.message
    locations = {e["loc"] for e in error.details["errors"]}
    assert locations == {"prompt", "max_turns", "colour"}

    with pytest.raises(RemoteError) as unknown:
        await start(bus, workflow="no_such_flow")
    assert unknown.value.code == "not_found"
    assert "tool_loop" in unknown.value.reply.message

    runs = await bus.request(WORKFLOWS_LIST, ListRunsRequest())
    assert runs.runs == []


async def test_start_with_a_run_id_is_idempotent(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    request = StartRequest(
        workflow="tool_loop", input={"prompt": "hi", "model": "fast"}, run_id="mine-1"
    )
    first = await bus.request(WORKFLOWS_START, request)
    second = await bus.request(WORKFLOWS_START, request)
    assert (first.created, second.created) == (True, False)
    await wait_status(bus, "mine-1", "finished")
    assert len(fake_model.chat_requests()) == 1

    other = StartRequest(workflow="tool_loop", input={"prompt": "other"}, run_id="mine-1")
    with pytest.raises(RemoteError) as caught:
        await bus.request(WORKFLOWS_START, other)
    assert caught.value.code == "conflict"
    listed = await bus.request(WORKFLOWS_LIST, ListRunsRequest(status="finished"))
    assert [r.run_id for r in listed.runs] == ["mine-1"]
