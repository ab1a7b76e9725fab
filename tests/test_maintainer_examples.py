"""The maintainer examples run: make demo's maintainers demo, parallel agents, broadcast-event,
and the fan-out benchmark (small)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentbus.framework import Settings
from agentbus.framework.testing import child_environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "parallel-agents"))
from simulated import SimulatedMaintainer  # noqa: E402 - the example folder is not a package


def run(*argv: str, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**child_environment(keep_key=False), **(env or {})},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_parallel_agents_take_the_slowest_agents_time_not_the_sum() -> None:
    out = run("examples/parallel-agents/demo.py", timeout=90)
    for name in ("user-service", "notification-service", "billing-service"):
        assert re.search(rf"{name}\s+escalate", out), out
    assert re.search(r"search-service\s+ignore", out)
    total = float(re.search(r"total (\d+\.\d+) s", out).group(1))  # type: ignore[union-attr]
    assert 2.0 <= total < 3.5  # the slowest agent thinks 2 s; the sum is 4.5 s


async def test_broadcast_event_shows_the_decisions(settings: Settings) -> None:
    agent = SimulatedMaintainer(settings, component="notification-service", think=0.0)
    await agent.start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "examples/broadcast-event/broadcast.py",
            "interface-change",
            "user.management",
            "--compatibility",
            "breaking",
            "--wait",
            "3",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "AGENTBUS_NATS_URL": str(settings.nats_url)},
            cwd=ROOT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await agent.stop()
    assert process.returncode == 0
    stdout = output.decode()
    assert re.search(r"notification-service\s+escalate/escalated", stdout), stdout
    assert "1 decision(s) within 3 s" in stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_maintainers_demo() -> None:
    out = run("examples/maintainers/demo.py", timeout=280)
    assert "promoted blue 1.0.0 -> green 1.0.1" in out
    assert "sample.greet now says 'Hello, Ada!' (version 1.0.2)" in out
    assert re.search(r"sample-greeter\s+\S*\s*interface\.changed\s+escalate / escalated", out)
    assert "passed -> passed  tests.test_greeter::test_greets_by_name" in out
    assert "agentbus up exited with 0" in out


@pytest.mark.slow
def test_the_fanout_benchmark_prints_its_ratio() -> None:
    out = run(
        "bench/broadcast_fanout.py", "--counts", "1,5", "--latency", "0.3", "--rounds", "1",
        timeout=120,
    )  # fmt: skip
    assert re.search(r"ratio at N=5: \d+\.\d+ \((meets|MISSES) the target <= 1.2\)", out), out
