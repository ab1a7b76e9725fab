"""Context-size summarisation, and the react and reflection presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner_helpers import FakeModel, Received, answer, messages, tool_results, wait_status

from agentbus.framework import Bus
from agentbus.interfaces.catalog.model import (
    AssistantMessage,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentbus.interfaces.catalog.workflows import WORKFLOWS_START, StartRequest
from agentbus.workflow_runner import context_window


def conversation(turns: int) -> list[Any]:
    history: list[Any] = [SystemMessage(content="sys"), UserMessage(content="the task")]
    for i in range(turns):
        history.append(
            AssistantMessage(
                text="x" * 200, tool_calls=[ToolCall(id=f"c{i}", name="fs_read", arguments={})]
            )
        )
        history.append(ToolResultMessage(tool_call_id=f"c{i}", name="fs_read", content="y" * 400))
    return history


def test_split_keeps_the_task_and_never_separates_calls_from_results() -> None:
    history = conversation(6)
    assert context_window.split(history, budget=100_000) is None

    parts = context_window.split(history, budget=200, keep_recent=3)

    assert parts is not None
    head, old, recent = parts
    assert head == history[:2]
    assert head + old + recent == history
    assert isinstance(recent[0], AssistantMessage)  # moved back from the tool result
    assert len(recent) == 4
    assert not isinstance(old[-1], AssistantMessage) or not old[-1].tool_calls


def test_split_needs_something_to_summarise() -> None:
    assert context_window.split(conversation(1), budget=10, keep_recent=4) is None


def request_text(received: Received) -> str:
    return " ".join(str(m.get("content")) for m in messages(received))


async def start(bus: Bus, workflow: str, **data: Any) -> str:
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow=workflow, input=data))
    return reply.run_id


async def test_a_long_conversation_is_summarised_through_the_gateway(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    turns: list[int] = []  # one run: its requests come one after the other

    def brain(received: Received) -> Any:
        if "Summarise the conversation" in request_text(received):
            return answer(received, "notes.txt says colour red, read three times")
        turns.append(1)
        if len(turns) <= 4:
            call = (f"c{len(turns)}", "fs_read", {"path": "notes.txt"})
            return answer(received, "r" * 300, [call])
        return answer(received, "finished")

    fake_model.brain = brain
    run_id = await start(
        bus, "tool_loop", prompt="read", tools=["fs.read"], model="fast", context_budget=400
    )
    run = await wait_status(bus, run_id, "finished", "failed")

    assert run.status == "finished", run.error
    assert "summarise" in [s.name for s in run.steps]
    after = [
        r
        for r in fake_model.chat_requests()
        if "Summary of the earlier conversation" in request_text(r)
    ]
    assert after, "no request carried the summary"
    for received in after:
        sent = messages(received)
        assert [m["role"] for m in sent[:3]] == ["system", "user", "user"]
        assert sent[1]["content"] == "read"
        # every tool result follows the assistant message that made its call
        calls: set[str] = set()
        for message in sent:
            calls |= {c["id"] for c in message.get("tool_calls") or []}
            if message["role"] == "tool":
                assert message["tool_call_id"] in calls


async def test_react_returns_the_final_answer(stack: Any, bus: Bus, fake_model: FakeModel) -> None:
    def brain(received: Received) -> Any:
        assert "Final Answer:" in str(messages(received)[0]["content"])
        if not tool_results(received):
            return answer(received, "Thought: read it", [("c1", "fs_read", {"path": "notes.txt"})])
        return answer(received, "Thought: it says red.\nFinal Answer: red")

    fake_model.brain = brain
    run = await wait_status(
        bus,
        await start(bus, "react", prompt="colour?", tools=["fs.read"], model="fast"),
        "finished",
        "failed",
    )
    assert isinstance(run.result, dict)
    assert run.result["answer"] == "red"
    assert run.result["turns"] == 2


async def test_reflection_revises_until_the_critic_approves(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    def brain(received: Received) -> Any:
        text = request_text(received)
        if "You review an answer" in text:
            return answer(received, "APPROVED" if "second draft" in text else "Too vague.")
        if "A reviewer says" in text:
            return answer(received, "second draft")
        return answer(received, "first draft")

    fake_model.brain = brain
    run = await wait_status(
        bus,
        await start(bus, "reflection", task="Explain NATS.", model="fast", rounds=3),
        "finished",
        "failed",
    )
    assert run.result == {
        "answer": "second draft",
        "rounds": [{"critique": "Too vague.", "revision": "second draft"}],
        "approved": True,
    }
    assert [s.name for s in run.steps] == ["draft", "critique", "revise", "critique"]


async def test_code_change_keeps_its_tools_inside_the_component_folder(
    stack: Any, bus: Bus, fake_model: FakeModel, workspace: Path
) -> None:
    component = workspace / "component"
    component.mkdir()
    (component / "app.py").write_text("VALUE = 'old'\n", encoding="utf-8")
    refusals: list[str] = []

    def escape_then_edit(received: Received) -> Any:
        done = tool_results(received)
        if not done:  # notes.txt is in the executor's roots, but outside this run's folder
            return answer(received, "", [("c1", "fs_read", {"path": "../notes.txt"})])
        if len(done) == 1:
            refusals.append(str(done[0]["content"]))
            edit = {"path": "app.py", "search": "old", "replace": "new"}
            return answer(received, "", [("c2", "fs_edit", edit)])
        return answer(received, "Renamed old to new.")

    fake_model.brain = escape_then_edit
    reply = await bus.request(
        WORKFLOWS_START,
        StartRequest(
            workflow="code-change",
            input={
                "component": "sample",
                "root": str(component),
                "instructions": "Rename old to new.",
                "model": "fast",
            },
        ),
    )
    run = await wait_status(bus, reply.run_id, "finished", "failed")

    assert run.status == "finished", run.error
    assert (component / "app.py").read_text(encoding="utf-8") == "VALUE = 'new'\n"
    assert "outside the folder this run may change" in refusals[0]
    assert [s.name for s in run.steps if s.name.startswith("tool:")] == ["tool:fs.edit"]
