"""Workflow step overhead: a durable tool loop through NATS vs the same loop in-process.

    python bench/workflow_step_overhead.py [--runs 200] [--turns 10] [--concurrent 200] [--json]

The loop is the ``tool_loop`` preset with a zero-latency fake model (a service that
answers ``model.language.generate`` at once: a no-op tool call until the last turn,
then text) and a no-op tool (a service answering ``tools.list`` / ``tools.execute``
at once). Each run records ``1 + turns + (turns - 1)`` steps: ``tools.list``, the
model calls and the tool calls.

* durable: runs go through the workflow runner in its own process(es): start request,
  work-queue dispatch, every step a request over NATS whose result is persisted to
  JetStream KV before the next step, run events, the final record;
* in-process: the same loop (same request and reply models) with the model and the
  tool called as functions, no bus and no persistence.

Per-step overhead = (durable run time - in-process run time) / steps, for sequential
runs; throughput = runs per second with many runs in flight, for 1 and 2 replicas.
Target (issue 5): durable per-step overhead p50 <= 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from agentbus.framework import Bus, EmbeddedNats, MessageContext, Service, Settings, handles
from agentbus.interfaces.catalog.model import (
    GENERATE,
    AssistantMessage,
    GenerateReply,
    GenerateRequest,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    Completed,
    ExecuteReply,
    ExecuteRequest,
    ListToolsReply,
    ListToolsRequest,
    Risk,
    ToolSpec,
)
from agentbus.interfaces.catalog.workflows import WORKFLOWS_START, RunEvent, StartRequest
from agentbus.interfaces.metadata import Source

NOOP = ToolSpec(
    name="bench.noop",
    description="Does nothing.",
    risk=Risk.LOW,
    input_schema={"type": "object", "properties": {}},
)


def think(request: GenerateRequest, turns: int) -> GenerateReply:
    """The zero-latency model: call the no-op tool until the last turn, then answer."""
    done = sum(1 for m in request.messages if isinstance(m, ToolResultMessage))
    calls = [] if done + 1 >= turns else [ToolCall(id=f"c{done}", name="bench_noop")]
    return GenerateReply(
        message=AssistantMessage(text="" if calls else "done", tool_calls=calls),
        finish_reason="tool_calls" if calls else "stop",
        usage=Usage(input_tokens=10, output_tokens=2),
        model="zero",
        alias="zero",
        provider="bench",
    )


def noop(request: ExecuteRequest) -> Completed:
    return Completed(tool=request.tool, content="ok", duration_ms=0.0)


class BenchModelAndTools(Service):
    """The zero-latency model and the no-op tool, on the bus."""

    name = "bench-deps"
    version = "1.0.0"
    turns = int(os.environ.get("BENCH_TURNS", "10"))

    @handles(GENERATE)
    async def generate(self, request: GenerateRequest, ctx: MessageContext) -> GenerateReply:
        return think(request, self.turns)

    @handles(TOOLS_LIST)
    async def list_tools(self, request: ListToolsRequest, ctx: MessageContext) -> ListToolsReply:
        return ListToolsReply(tools=[NOOP])

    @handles(TOOLS_EXECUTE)
    async def execute(self, request: ExecuteRequest, ctx: MessageContext) -> ExecuteReply:
        return ExecuteReply(result=noop(request))


def in_process_loop(turns: int) -> str:
    """The same loop without the bus: model and tool as functions."""
    tools = [ToolDefinition(name="bench_noop", parameters=NOOP.input_schema)]
    messages: list[Any] = [SystemMessage(content="s"), UserMessage(content="go")]
    for _ in range(turns):
        request = GenerateRequest(model="zero", messages=messages, tools=tools)
        reply = GenerateReply.model_validate_json(think(request, turns).model_dump_json())
        messages.append(reply.message)
        if not reply.message.tool_calls:
            return reply.message.text
        for call in reply.message.tool_calls:
            outcome = noop(ExecuteRequest(tool="bench.noop", caller="bench", idempotency_key="k"))
            messages.append(
                ToolResultMessage(tool_call_id=call.id, name=call.name, content=outcome.content)
            )
    return ""


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def processes(url: str, data_dir: Path, turns: int, replicas: int) -> Iterator[None]:
    env = {
        **os.environ,
        "AGENTBUS_NATS_URL": url,
        "AGENTBUS_DATA_DIR": str(data_dir),
        "AGENTBUS_MAX_CONCURRENCY": "1024",
        "AGENTBUS_RUNNER_MAX_RUNS": "256",
        "AGENTBUS_LOG_LEVEL": "WARNING",
        "BENCH_TURNS": str(turns),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
    }
    argv = [sys.executable, "-m", "agentbus.framework.cli", "serve"]
    children = [subprocess.Popen([*argv, f"{Path(__file__).stem}:BenchModelAndTools"], env=env)]
    children += [
        subprocess.Popen(
            [*argv, "agentbus.workflow_runner.service:WorkflowRunner", "--instance", f"r{i}"],
            env=env,
        )
        for i in range(replicas)
    ]
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(15)


class Finished:
    """Waits for runs' finished events (one wildcard subscription)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.early: dict[str, float] = {}

    async def on_event(self, msg: Msg) -> None:
        if b'"finished"' not in msg.data and b'"failed"' not in msg.data:
            return
        event = RunEvent.model_validate_json(msg.data)
        if event.event.kind == "failed":
            raise SystemExit(f"run {event.run_id} failed: {event.event}")
        if event.event.kind != "finished":
            return
        stamp = time.perf_counter()
        future = self.waiting.pop(event.run_id, None)
        if future is None:
            self.early[event.run_id] = stamp
        elif not future.done():
            future.set_result(stamp)

    async def wait(self, run_id: str, timeout: float = 60) -> float:
        if run_id in self.early:
            return self.early.pop(run_id)
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return await asyncio.wait_for(future, timeout)


async def one_run(bus: Bus, finished: Finished, input_data: dict[str, Any]) -> float:
    started = time.perf_counter()
    reply = await bus.request(WORKFLOWS_START, StartRequest(workflow="tool_loop", input=input_data))
    return await finished.wait(reply.run_id) - started


async def measure(
    runs: int, turns: int, concurrent: int, replicas: int, sequential: bool
) -> dict[str, float]:
    input_data = {
        "prompt": "go",
        "model": "zero",
        "context_budget": 1_000_000,
        "tools": ["bench.noop"],
        "max_turns": turns,
        "stream": False,
    }
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp)) as server:
        settings = Settings(nats_url=server.url, data_dir=Path(tmp))
        with processes(server.url, Path(tmp), turns, replicas):
            async with Bus(settings, Source("bench", "client")) as bus:
                finished = Finished()
                await bus.subscribe_raw("agentbus.runs.*.events", finished.on_event)
                for _ in range(400):  # until the runner and the fake services answer
                    try:
                        await asyncio.wait_for(one_run(bus, finished, input_data), 2)
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                result: dict[str, float] = {}
                if sequential:
                    for _ in range(20):  # warm-up
                        await one_run(bus, finished, input_data)
                    durable = [await one_run(bus, finished, input_data) for _ in range(runs)]
                    result["durable_run_p50_ms"] = quantile(durable, 0.5) * 1e3
                    result["durable_run_p99_ms"] = quantile(durable, 0.99) * 1e3
                    result["durable_runs"] = durable  # type: ignore[assignment]
                started = time.perf_counter()
                await asyncio.gather(
                    *(one_run(bus, finished, input_data) for _ in range(concurrent))
                )
                result["runs_per_second"] = concurrent / (time.perf_counter() - started)
    return result


def main(runs: int, turns: int, concurrent: int) -> dict[str, float]:
    steps = 1 + turns + (turns - 1)
    for _ in range(200):
        in_process_loop(turns)
    local = []
    for _ in range(runs):
        started = time.perf_counter()
        in_process_loop(turns)
        local.append(time.perf_counter() - started)
    local_p50 = quantile(local, 0.5)
    one = asyncio.run(measure(runs, turns, concurrent, replicas=1, sequential=True))
    two = asyncio.run(measure(runs, turns, concurrent, replicas=2, sequential=False))
    durable: list[float] = one.pop("durable_runs")  # type: ignore[assignment]
    overhead = [(d - local_p50) / steps for d in durable]
    return {
        "steps_per_run": steps,
        "in_process_run_p50_ms": local_p50 * 1e3,
        "in_process_step_p50_ms": local_p50 / steps * 1e3,
        "durable_run_p50_ms": one["durable_run_p50_ms"],
        "durable_run_p99_ms": one["durable_run_p99_ms"],
        "step_overhead_p50_ms": quantile(overhead, 0.5) * 1e3,
        "step_overhead_p99_ms": quantile(overhead, 0.99) * 1e3,
        "step_overhead_mean_ms": statistics.mean(overhead) * 1e3,
        "runs_per_second_1_replica": one["runs_per_second"],
        "runs_per_second_2_replicas": two["runs_per_second"],
    }


def report(result: dict[str, float], runs: int, turns: int, concurrent: int) -> str:
    ok = "ok" if result["step_overhead_p50_ms"] <= 3.0 else "MISSED"
    return "\n".join(
        [
            f"tool loop of {turns} turns = {result['steps_per_run']:.0f} steps per run; "
            f"{runs} sequential runs; {concurrent} runs in flight for throughput",
            f"in-process run p50          {result['in_process_run_p50_ms']:8.2f} ms "
            f"({result['in_process_step_p50_ms']:.3f} ms per step)",
            f"durable run p50 / p99       {result['durable_run_p50_ms']:8.2f} / "
            f"{result['durable_run_p99_ms']:.2f} ms",
            f"per-step overhead p50       {result['step_overhead_p50_ms']:8.2f} ms   "
            f"target <= 3 ms: {ok}",
            f"per-step overhead p99       {result['step_overhead_p99_ms']:8.2f} ms",
            f"runs/s, 1 replica           {result['runs_per_second_1_replica']:8.1f}",
            f"runs/s, 2 replicas          {result['runs_per_second_2_replicas']:8.1f}",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="sequential durable runs")
    parser.add_argument("--turns", type=int, default=10, help="model turns per run")
    parser.add_argument("--concurrent", type=int, default=200, help="runs in flight")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    figures = main(args.runs, args.turns, args.concurrent)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(report(figures, args.runs, args.turns, args.concurrent))
