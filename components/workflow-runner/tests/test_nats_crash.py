"""Twenty runs with side effects across a kill -9 of nats-server: every run finishes after
the server comes back on its store, and every side effect happened exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import (
    SIDE_EFFECT,
    FakeModel,
    Received,
    answer,
    first_user,
    policy,
    tool_results,
    wait_status,
)

from agentbus.framework import Bus, EmbeddedNats, Settings
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.workflows import WORKFLOWS_START, StartRequest
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.service import ToolExecutor

MARK = "./mark.sh"
RUNS = 20


def mark_then_report(received: Received) -> Any:
    if not tool_results(received):
        token = first_user(received).split()[-1]
        return answer(received, "", [("call_mark", "shell_exec", {"argv": [MARK, token]})])
    return answer(received, "marked")


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_twenty_runs_finish_after_a_nats_kill_9_with_each_side_effect_once(
    gateway: Any,
    start_service: Any,
    start_runner: Any,
    fake_model: FakeModel,
    own_nats: EmbeddedNats,
    settings: Settings,
    workspace: Path,
) -> None:
    script = workspace / MARK
    script.write_text('#!/bin/sh\necho "$1" >> marks.log; sleep 1; echo "finished $1"\n')
    script.chmod(0o755)
    await start_service(
        ToolExecutor,
        policies=PolicyFile.parse(policy(workspace, commands=[SIDE_EFFECT, MARK])),
    )
    fake_model.brain = mark_then_report
    # A reply in flight when the server died is lost: the call is asked again when its
    # attempt (tool) or its timeout (model) ends, here shorter than the defaults.
    await start_runner(instance="r1", tool_attempt_timeout=3.0, model_timeout=15.0, step_retries=4)
    tokens = [f"t{n:02d}" for n in range(RUNS)]
    data = {"tools": ["shell.exec"], "model": "fast", "context_budget": 9000}
    async with Bus(settings, Source("test", "before")) as bus:
        replies = await asyncio.gather(
            *(
                bus.request(
                    WORKFLOWS_START,
                    StartRequest(workflow="tool_loop", input={**data, "prompt": f"mark {t}"}),
                )
                for t in tokens
            )
        )
    marks = workspace / "marks.log"

    def marked() -> int:
        return len(marks.read_text(encoding="utf-8").split()) if marks.exists() else 0

    await eventually(lambda: marked() >= 3, timeout=60, what="the first side effects")
    own_nats.kill()  # mid-flight: tools running, steps being recorded, replies on the way
    await asyncio.sleep(2)
    own_nats.start()

    async with Bus(settings, Source("test", "after"), patient=True) as bus:
        runs = [
            await wait_status(bus, r.run_id, "finished", "failed", "cancelled", timeout=180)
            for r in replies
        ]

    failed = {r.run_id: r.error for r in runs if r.status != "finished"}
    assert not failed, failed
    counts = Counter(marks.read_text(encoding="utf-8").split())
    assert counts == Counter(tokens), "each side effect exactly once"
