"""A tool call is sent in short attempts with one idempotency key: a call longer than an
attempt runs once and its outcome is replayed; a call whose executor was killed -9 is
noticed in seconds (its claim's lease lapses) and run again by the restarted executor,
instead of the run waiting out the whole tool timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import SIDE_EFFECT, FakeModel, side_effect_then_report, wait_status

from agentbus.framework import Bus, RemoteError
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.tools import TOOLS_LIST, ListToolsRequest
from agentbus.interfaces.catalog.workflows import WORKFLOWS_START, StartRequest

RUN = {"prompt": "run it", "tools": ["shell.exec"], "model": "fast", "context_budget": 9000}


async def test_a_call_longer_than_one_attempt_runs_once_and_is_replayed(
    gateway: Any,
    executor: Any,
    start_runner: Any,
    bus: Bus,
    fake_model: FakeModel,
    workspace: Path,
) -> None:
    fake_model.brain = side_effect_then_report
    # the script takes 1.5 s: three attempts go unanswered or hear "still running"
    await start_runner(instance="r1", tool_attempt_timeout=0.5)
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=RUN))

    run = await wait_status(bus, reply.run_id, "finished", "failed", timeout=30)

    assert run.status == "finished", run.error
    assert (workspace / "side.log").read_text(encoding="utf-8") == "ran\n"
    [tool_step] = [s for s in run.steps if s.kind == "tool"]
    assert isinstance(tool_step.result, dict)
    assert tool_step.result["replayed"] is True  # the outcome came to a later attempt
    assert "finished" in tool_step.result["content"]


def policy_toml(workspace: Path) -> str:
    return f"""
[executor]
relays = ["workflow-runner"]

[policy.workflow-runner]
roots = ["{workspace}"]
tools = ["fs.*", "shell.exec"]
commands = ["{SIDE_EFFECT}"]
medium = "run"
"""


async def start_executor_process(
    nats_url: str, policy: Path, data: Path, log: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATA_DIR": str(data),
        "AGENTBUS_TOOLS_POLICY": str(policy),
    }
    with log.open("a") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentbus.framework.cli",
            "serve",
            "agentbus.tool_executor.service:ToolExecutor",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_an_executor_killed_mid_call_is_noticed_and_the_call_runs_again(
    gateway: Any,
    start_runner: Any,
    bus: Bus,
    fake_model: FakeModel,
    workspace: Path,
    nats_url: str,
    tmp_path: Path,
) -> None:
    fake_model.brain = side_effect_then_report
    policy = tmp_path / "tools.toml"
    policy.write_text(policy_toml(workspace), encoding="utf-8")
    log = tmp_path / "executor.log"
    executors: list[asyncio.subprocess.Process] = []

    async def executor_answers() -> bool:
        with contextlib.suppress(RemoteError):  # any answer, even a refusal: it serves
            await bus.request(TOOLS_LIST, ListToolsRequest(caller="test"), timeout=2)
        return True

    try:
        executors.append(await start_executor_process(nats_url, policy, tmp_path / "x1", log))
        await eventually(executor_answers, timeout=60, what="the executor process serving")
        await start_runner(instance="r1", tool_attempt_timeout=1.0)
        reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=RUN))
        side_log = workspace / "side.log"
        await eventually(side_log.exists, timeout=30, what="the tool started in the executor")

        executors[0].send_signal(signal.SIGKILL)  # mid call: its claim stays "running"
        await executors[0].wait()
        executors.append(await start_executor_process(nats_url, policy, tmp_path / "x2", log))

        # Not the 330 s tool timeout: the claim's 15 s lease lapses, a retry runs it again.
        run = await wait_status(bus, reply.run_id, "finished", "failed", timeout=90)
    finally:
        for process in executors:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert run.status == "finished", run.error
    # At least once, never zero times: the killed call had begun, the retry ran it again.
    assert side_log.read_text(encoding="utf-8") == "ran\nran\n"
    [tool_step] = [s for s in run.steps if s.kind == "tool"]
    assert isinstance(tool_step.result, dict)
    assert "finished" in tool_step.result["content"]
    assert "took over the tool call" in log.read_text(encoding="utf-8")
