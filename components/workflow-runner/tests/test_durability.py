"""Durability: a killed replica's run continues elsewhere, replicas share runs, NATS restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from runner_helpers import (
    FakeModel,
    Received,
    answer,
    run_events,
    side_effect_then_report,
    tool_results,
    wait_status,
)

from agentbus.framework import Bus, EmbeddedNats, NoRespondersError, Settings
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.tools import APPROVALS_DECIDE, DecideRequest
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_START,
    StartRequest,
)
from agentbus.interfaces.metadata import Source
from agentbus.interfaces.subjects import workflow_dispatch_subject
from agentbus.workflow_runner import RunContext, WorkflowApp, dispatch, step
from agentbus.workflow_runner.dispatch import Dispatch


def turn_one_requests(fake: FakeModel) -> int:
    return sum(1 for r in fake.chat_requests() if not tool_results(r))


@pytest.mark.slow
async def test_kill_9_mid_run_another_replica_finishes_and_the_tool_ran_once(
    gateway: Any,
    executor: Any,
    start_runner: Any,
    bus: Bus,
    fake_model: FakeModel,
    workspace: Path,
    nats_url: str,
    tmp_path: Path,
) -> None:
    fake_model.brain = side_effect_then_report
    env = {
        **os.environ,
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATA_DIR": str(tmp_path / "victim"),
        "AGENTBUS_RUNNER_ACK_WAIT": "2",
    }
    log = (tmp_path / "victim.log").open("w")
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentbus.framework.cli",
        "serve",
        "agentbus.workflow_runner.service:WorkflowRunner",
        "--instance",
        "victim",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        data = {
            "prompt": "run it",
            "tools": ["shell.exec"],
            "model": "fast",
            "context_budget": 9000,
        }
        start = StartRequest(workflow="tool_loop", input=data, run_id="durable-1")

        async def started() -> bool:
            try:
                await bus.request(WORKFLOWS_START, start, timeout=2)
            except NoRespondersError:
                await asyncio.sleep(0.1)
                return False
            return True

        await eventually(started, timeout=30, what="the runner process serving")
        side_log = workspace / "side.log"
        await eventually(side_log.exists, timeout=30, what="the tool started in the executor")
        victim.send_signal(signal.SIGKILL)  # mid tool call: its result is not persisted yet
        await asyncio.wait_for(victim.wait(), 10)
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
        log.close()

    await start_runner(instance="heir", ack_wait=2.0)
    run = await wait_status(bus, start.run_id, "finished", "failed", timeout=30)

    assert run.status == "finished", run.error
    assert side_log.read_text(encoding="utf-8") == "ran\n"  # exactly once
    assert run.replica == "heir"
    assert run.attempts == 2
    assert turn_one_requests(fake_model) == 1  # the completed model call was not repeated
    [tool_step] = [s for s in run.steps if s.kind == "tool"]
    assert isinstance(tool_step.result, dict)
    assert tool_step.result["replayed"] is True  # the executor's record, not a second run
    assert "finished" in tool_step.result["content"]
    kinds = [(e.replica, e.event.kind) for e in await run_events(bus, start.run_id)]
    assert ("victim", "run_started") in kinds
    assert ("heir", "resumed") in kinds


async def test_three_replicas_share_a_hundred_concurrent_runs(
    gateway: Any, executor: Any, start_runner: Any, bus: Bus, fake_model: FakeModel
) -> None:
    def read_then_answer(received: Received) -> Any:
        if not tool_results(received):
            return answer(received, "", [("c1", "fs_read", {"path": "notes.txt"})])
        return answer(received, "ok")

    fake_model.brain = read_then_answer
    for name in ("r1", "r2", "r3"):
        await start_runner(instance=name, max_runs=20)
    data = {"prompt": "read", "tools": ["fs.read"], "model": "fast", "context_budget": 9000}

    replies = await asyncio.gather(
        *(
            bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))
            for _ in range(100)
        )
    )
    runs = [await wait_status(bus, r.run_id, "finished", "failed", timeout=60) for r in replies]

    assert {r.status for r in runs} == {"finished"}
    assert {r.replica for r in runs} == {"r1", "r2", "r3"}
    assert all(r.attempts == 1 for r in runs)
    assert all(
        [s.name for s in r.steps] == ["tools.list", "model", "tool:fs.read", "model"] for r in runs
    )
    assert len(fake_model.chat_requests()) == 200


async def test_a_step_longer_than_ack_wait_keeps_its_lease(
    gateway: Any, executor: Any, start_runner: Any, bus: Bus, fake_model: FakeModel
) -> None:
    fake_model.brain = lambda received: answer(received, "took a while", delay=3.5)
    for name in ("r1", "r2"):
        await start_runner(instance=name, ack_wait=1.0)
    data = {"prompt": "x", "model": "fast", "context_budget": 9000}
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))

    run = await wait_status(bus, reply.run_id, "finished", "failed")

    assert run.status == "finished", run.error
    assert run.attempts == 1  # renewed every ack_wait / 3: never given to the other replica
    assert len(fake_model.chat_requests()) == 1


async def test_a_duplicate_dispatch_of_a_running_run_is_ignored(
    stack: Any, bus: Bus, fake_model: FakeModel
) -> None:
    fake_model.brain = lambda received: answer(received, "slow answer", delay=1.0)
    data = {"prompt": "x", "model": "fast", "context_budget": 9000}
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))
    await eventually(lambda: fake_model.chat_requests(), what="the model call")

    # a second dispatch message for the same run (outside the de-duplication window)
    await bus.js.publish(
        workflow_dispatch_subject(),
        Dispatch(run_id=reply.run_id).model_dump_json().encode(),
        headers={"Nats-Msg-Id": "another-id"},
    )

    run = await wait_status(bus, reply.run_id, "finished", "failed")
    assert run.status == "finished", run.error
    assert run.attempts == 1
    assert len(fake_model.chat_requests()) == 1


@pytest.mark.slow
async def test_a_run_survives_a_restart_of_nats_server(
    gateway: Any,
    executor: Any,
    start_runner: Any,
    fake_model: FakeModel,
    own_nats: EmbeddedNats,
    settings: Settings,
    workspace: Path,
) -> None:
    def write_then_report(received: Received) -> Any:
        if not tool_results(received):
            write = {"path": "after.txt", "content": "survived"}
            return answer(received, "", [("call_w", "fs_write", write)])
        return answer(received, "written")

    fake_model.brain = write_then_report
    await start_runner(instance="r1")
    data = {"prompt": "w", "tools": ["fs.write"], "model": "fast", "caller": "agent"}
    async with Bus(settings, Source("test", "before")) as bus:
        reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))
        await wait_status(bus, reply.run_id, "waiting_approval")

    own_nats.stop()  # a clean stop flushes file storage; the services keep reconnecting
    own_nats.start()

    async with Bus(settings, Source("test", "after")) as bus:
        run = await wait_status(bus, reply.run_id, "waiting_approval")
        approval = run.pending_approvals[0].approval_id

        async def resumed() -> bool:
            try:
                await bus.request(
                    APPROVALS_DECIDE,
                    DecideRequest(approval_id=approval, decision="approve", decided_by="ada"),
                    timeout=2,
                )
            except Exception:
                return False
            return True

        await eventually(resumed, timeout=20, what="the runner answering after the restart")
        run = await wait_status(bus, reply.run_id, "finished", "failed", timeout=30)

    assert run.status == "finished", run.error
    assert (workspace / "after.txt").read_text(encoding="utf-8") == "survived"
    assert turn_one_requests(fake_model) == 1
    assert [s.name for s in run.steps][:3] == ["model.catalog", "tools.list", "model"]


@pytest.mark.slow
async def test_a_run_executing_during_a_nats_server_restart_finishes(
    gateway: Any,
    executor: Any,
    start_runner: Any,
    fake_model: FakeModel,
    own_nats: EmbeddedNats,
    settings: Settings,
    workspace: Path,
) -> None:
    def slow_read_then_report(received: Received) -> Any:
        if not tool_results(received):
            call = ("call_r", "fs_read", {"path": "notes.txt"})
            return answer(received, "", [call], delay=1.5)
        return answer(received, "read it")

    fake_model.brain = slow_read_then_report
    await start_runner(instance="r1", model_timeout=3.0)
    data = {"prompt": "r", "tools": ["fs.read"], "model": "fast", "context_budget": 9000}
    async with Bus(settings, Source("test", "before")) as bus:
        reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=data))
        await eventually(fake_model.chat_requests, what="the first model call")

    own_nats.stop()  # while the runner waits for the model's answer
    own_nats.start()

    async with Bus(settings, Source("test", "after")) as bus:
        run = await wait_status(bus, reply.run_id, "finished", "failed", timeout=40)

    assert run.status == "finished", run.error
    assert [s.name for s in run.steps] == ["tools.list", "model", "tool:fs.read", "model"]


# -- a lease that lapsed under a replica still executing the run ---------------------------

HELD = asyncio.Event()
EFFECTS: list[str] = []
lapsing = WorkflowApp("lapsing-test")


@step
async def effect() -> str:
    EFFECTS.append("once")
    await HELD.wait()
    return "done"


class NoInput(BaseModel):
    pass


@lapsing.workflow("held_effect", input=NoInput)
async def held_effect(run: RunContext, data: NoInput) -> str:
    return await effect()


async def test_a_run_given_again_to_the_replica_still_executing_it_runs_once(
    start_runner: Any, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS outage longer than the lease: JetStream gives the run again, here to the only
    replica, which is still executing it. It follows its own execution instead of starting
    the run a second time (which ran each step's effect twice)."""

    async def renews_nothing(msg: Any, ack_wait: float) -> None:
        await asyncio.Event().wait()  # as if every renewal were lost in the outage

    monkeypatch.setattr(dispatch, "keep_alive", renews_nothing)
    HELD.clear()
    EFFECTS.clear()
    await start_runner(instance="only", apps=(lapsing,), ack_wait=1.0)
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="held_effect", input={}))
    await eventually(lambda: EFFECTS, what="the step running")
    redelivered = await eventually(
        lambda: _delivered_more_than_once(bus), timeout=20, what="JetStream giving the run again"
    )
    assert redelivered

    HELD.set()
    run = await wait_status(bus, reply.run_id, "finished", "failed")

    assert run.status == "finished", run.error
    assert EFFECTS == ["once"]
    assert run.attempts == 1


async def _delivered_more_than_once(bus: Bus) -> bool:
    info = await bus.js.consumer_info(dispatch.QUEUE.name, dispatch.CONSUMER)
    return info.num_redelivered > 0
