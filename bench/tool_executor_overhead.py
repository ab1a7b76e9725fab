"""Tool executor overhead: a tool call through the bus vs the same tool function in-process.

    python bench/tool_executor_overhead.py [--calls 500] [--json]

Two operations, each measured both ways in one run, blocks interleaved so that
machine drift hits both alike:

* ``fs.read`` of a small file (1 KiB);
* ``shell.exec`` of ``true`` (a process start dominates).

The bus path is what an agent pays: ``tools.execute`` over one embedded
nats-server to the executor running in its own process, including identity and
policy checks, argument validation, and the audit record (a JetStream publish
with acknowledgement). The in-process path calls the tool's function directly
with the same policy. The figure that matters is the added p50.
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
from collections.abc import Iterator
from pathlib import Path

from timing import Call, quantile, timed

from agentbus.framework import Bus, EmbeddedNats, Settings, serve
from agentbus.interfaces.catalog.tools import TOOLS_EXECUTE, ExecuteRequest
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.declaration import ToolContext
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.service import ToolExecutor
from agentbus.tool_executor.tools import fs, shell


def policy_text(root: Path) -> str:
    return (
        f'[policy.bench]\nroots = ["{root}"]\ntools = ["fs.read", "shell.exec"]\n'
        'commands = ["true"]\nmedium = "run"\n'
    )


@contextlib.contextmanager
def executor_process(url: str, data_dir: Path, policy: Path) -> Iterator[None]:
    env = dict(os.environ, AGENTBUS_TOOLS_POLICY=str(policy))
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--url", url, "--data-dir", str(data_dir)], env=env
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(10)


async def main(calls: int) -> dict[str, float]:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        root = Path(tmp) / "ws"
        root.mkdir()
        (root / "small.txt").write_text("x" * 1023 + "\n", encoding="utf-8")
        policy_file = Path(tmp) / "tools.toml"
        policy_file.write_text(policy_text(root), encoding="utf-8")
        policy = PolicyFile.load(policy_file).for_caller("bench")
        ctx = ToolContext("bench", policy)
        settings = Settings(nats_url=server.url, data_dir=Path(tmp))
        with executor_process(server.url, Path(tmp), policy_file):
            async with Bus(settings, Source("bench", "1")) as bus:

                def via_bus(tool: str, arguments: dict[str, object]) -> Call:
                    request = ExecuteRequest(tool=tool, arguments=arguments, caller="bench")  # type: ignore[arg-type]
                    return lambda: bus.request(TOOLS_EXECUTE, request, timeout=10)

                read_args = fs.ReadArgs(path="small.txt")
                exec_args = shell.ExecArgs(argv=["true"])
                paths = {
                    "fs.read": (
                        lambda: fs.read.function(read_args, ctx),
                        via_bus("fs.read", {"path": "small.txt"}),
                    ),
                    "shell.exec true": (
                        lambda: shell.exec_.function(exec_args, ctx),
                        via_bus("shell.exec", {"argv": ["true"]}),
                    ),
                }
                for _ in range(200):  # wait for the executor, then warm up
                    try:
                        await paths["fs.read"][1]()
                        break
                    except Exception:  # not up yet
                        await asyncio.sleep(0.1)
                result: dict[str, float] = {}
                for name, (local, remote) in paths.items():
                    await timed(local, 20)
                    await timed(remote, 20)
                    local_lat: list[float] = []
                    bus_lat: list[float] = []
                    block = 50
                    for _ in range(max(1, calls // block)):
                        local_lat += await timed(local, block)
                        bus_lat += await timed(remote, block)
                    result[f"{name} in-process p50 (us)"] = quantile(local_lat, 0.5) * 1e6
                    result[f"{name} bus p50 (us)"] = quantile(bus_lat, 0.5) * 1e6
                    result[f"{name} bus p99 (us)"] = quantile(bus_lat, 0.99) * 1e6
                    result[f"{name} added p50 (us)"] = (
                        statistics.median(bus_lat) - statistics.median(local_lat)
                    ) * 1e6
                return result


def report(result: dict[str, float], calls: int) -> str:
    lines = [f"{calls} calls per path, interleaved blocks of 50; executor in its own process"]
    lines.append(f"{'operation':18}{'in-process p50':>16}{'bus p50':>12}{'bus p99':>12}"
                 f"{'added p50':>12}  (microseconds)")  # fmt: skip
    lines.extend(
        f"{name:18}{result[f'{name} in-process p50 (us)']:16.0f}"
        f"{result[f'{name} bus p50 (us)']:12.0f}{result[f'{name} bus p99 (us)']:12.0f}"
        f"{result[f'{name} added p50 (us)']:12.0f}"
        for name in ("fs.read", "shell.exec true")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per path and operation")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        logging.basicConfig(level=logging.WARNING)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(ToolExecutor(Settings(nats_url=args.url, data_dir=args.data_dir))))
        sys.exit(0)
    figures = asyncio.run(main(args.calls))
    print(json.dumps(figures, indent=2) if args.json else report(figures, args.calls))
