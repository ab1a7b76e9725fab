"""The policy file edited while the executor runs: a valid edit applies to new calls, an
invalid one leaves the previous policy in force, and MCP server changes wait for a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import Workspace

from agentbus.framework import Bus, RemoteError
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    Completed,
    ExecuteRequest,
    ListToolsRequest,
    Risk,
)
from agentbus.tool_executor.declaration import Tool, ToolContext, ToolOutcome
from agentbus.tool_executor.ledger import ExecutionLedger, ExecutionRecord
from agentbus.tool_executor.policy import POLICY_ENV
from agentbus.tool_executor.service import ToolExecutor

FAKE_SERVER = Path(__file__).parent / "fixtures" / "fake_mcp_server.py"

Call = Callable[..., Awaitable[Completed]]


def policy_text(
    workspace: Workspace,
    tools: list[str],
    mcp_servers: tuple[str, ...] = (),
    max_output: int = 1000,
) -> str:
    """A policy file for caller ``agent`` with these tools and these fake MCP servers."""
    lines = []
    for name in mcp_servers:
        args = [str(FAKE_SERVER), str(workspace.outside)]
        lines += [
            f"[mcp_servers.{name}]",
            f"command = {json.dumps(sys.executable)}",
            f"args = {json.dumps(args)}",
            "python = true",  # in its sandbox: the executor's Python, its file, where it writes
            f"read_roots = {json.dumps([str(FAKE_SERVER.parent)])}",
            f"roots = {json.dumps([str(workspace.outside)])}",
        ]
    lines += [
        "[policy.agent]",
        f"roots = {json.dumps([str(workspace.ws)])}",
        f"tools = {json.dumps(tools)}",
        'medium = "run"',
        f"max_output = {max_output}",
    ]
    return "\n".join(lines) + "\n"


def replace_file(path: Path, text: str) -> None:
    """Write a new version by rename, as editors and ConfigMaps do (a new inode each time)."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text, encoding="utf-8")
    staged.replace(path)


@pytest.fixture
def policy_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tools.toml"
    monkeypatch.setenv(POLICY_ENV, str(path))
    return path


@pytest.fixture
async def agent(bus_as: Any) -> Bus:
    bus: Bus = await bus_as("agent")
    return bus


@pytest.fixture
def call(agent: Bus) -> Call:
    async def run(tool: str, **arguments: Any) -> Completed:
        request = ExecuteRequest(tool=tool, arguments=arguments, caller="agent")
        reply = await agent.request(TOOLS_EXECUTE, request, timeout=20)
        assert isinstance(reply.result, Completed)
        return reply.result

    return run


async def start_watching(start_service: Any, policy_path: Path, text: str) -> ToolExecutor:
    """An executor reading ``policy_path`` (written with ``text`` first), checked every 50 ms."""
    replace_file(policy_path, text)
    executor: ToolExecutor = await start_service(
        ToolExecutor, settings={"file_watch_interval": 0.05}
    )
    return executor


async def listed(agent: Bus) -> set[str]:
    reply = await agent.request(TOOLS_LIST, ListToolsRequest(caller="agent"))
    return {spec.name for spec in reply.tools}


def allowed(call: Call, tool: str, **arguments: Any) -> Callable[[], Awaitable[bool]]:
    """A predicate for ``eventually``: the call completes (False while it is forbidden)."""

    async def check() -> bool:
        try:
            await call(tool, **arguments)
        except RemoteError as exc:
            if exc.code != "forbidden":
                raise
            return False
        return True

    return check


async def assert_forbidden(call: Call, tool: str, **arguments: Any) -> None:
    with pytest.raises(RemoteError) as refused:
        await call(tool, **arguments)
    assert refused.value.code == "forbidden"


def logged(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> Callable[[], bool]:
    def check() -> bool:
        return any(
            record.levelno == level and all(part in record.getMessage() for part in parts)
            for record in caplog.records
        )

    return check


async def test_a_refused_tool_is_allowed_after_the_file_allows_it(
    workspace: Workspace,
    policy_path: Path,
    start_service: Any,
    agent: Bus,
    call: Call,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agentbus.tool_executor")
    await start_watching(start_service, policy_path, policy_text(workspace, ["fs.read"]))
    await assert_forbidden(call, "fs.list", path=".")
    assert await listed(agent) == {"fs.read"}

    replace_file(policy_path, policy_text(workspace, ["fs.read", "fs.list"]))

    await eventually(allowed(call, "fs.list", path="."), what="fs.list allowed after the edit")
    assert await listed(agent) == {"fs.read", "fs.list"}
    assert logged(caplog, logging.INFO, str(policy_path), "callers changed: agent (tools)")()


@pytest.mark.parametrize(
    "invalid",
    [
        pytest.param('[policy.agent]\ntools = ["fs.*"\n', id="not-toml"),
        pytest.param('[policy.agent]\ntools = ["fs.*"]\nshell = "maybe"\n', id="bad-value"),
    ],
)
async def test_an_invalid_edit_keeps_the_previous_policy_until_the_file_is_fixed(
    invalid: str,
    workspace: Workspace,
    policy_path: Path,
    start_service: Any,
    call: Call,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_watching(start_service, policy_path, policy_text(workspace, ["fs.read"]))

    replace_file(policy_path, invalid)
    await eventually(
        logged(caplog, logging.ERROR, str(policy_path), "previous policy stays in force"),
        what="the invalid edit reported",
    )
    read = await call("fs.read", path="file.txt")
    assert read.content == "one\ntwo\nthree\n"
    await assert_forbidden(call, "fs.list", path=".")  # the broken file would allow fs.*

    replace_file(policy_path, policy_text(workspace, ["fs.read", "fs.list"]))
    await eventually(allowed(call, "fs.list", path="."), what="fs.list allowed after the fix")


async def test_a_changed_mcp_server_list_keeps_the_imports_and_applies_the_rest(
    workspace: Workspace,
    policy_path: Path,
    start_service: Any,
    agent: Bus,
    call: Call,
    caplog: pytest.LogCaptureFixture,
) -> None:
    initial = policy_text(workspace, ["mcp.*"], mcp_servers=("fake",))
    executor = await start_watching(start_service, policy_path, initial)
    running = executor.imports.connections
    assert (await call("mcp.fake.echo", text="before")).content == "before"

    replace_file(policy_path, policy_text(workspace, ["mcp.*", "fs.read"], mcp_servers=("other",)))

    await eventually(allowed(call, "fs.read", path="file.txt"), what="the rest applied")
    assert logged(caplog, logging.WARNING, "restart the executor", "added other", "removed fake")()
    assert executor.imports.connections is running
    assert [connection.name for connection in running] == ["fake"]
    assert (await call("mcp.fake.echo", text="after")).content == "after"
    assert {name for name in await listed(agent) if name.startswith("mcp.")} == {
        "mcp.fake.add",
        "mcp.fake.connect",
        "mcp.fake.echo",
        "mcp.fake.environment",
        "mcp.fake.linger",
        "mcp.fake.read",
        "mcp.fake.scribble",
    }
    assert executor.engine.policies.mcp_servers.keys() == {"fake"}


class HeldRuns(ExecutionLedger):
    """The engine's execution ledger, holding each claim until released: a call paused
    after it read its policy and before its tool runs."""

    def __init__(self, ledger: ExecutionLedger) -> None:
        super().__init__(ledger.kv)
        self.claimed = asyncio.Event()
        self.release = asyncio.Event()

    async def claim(self, key: str, arguments_digest: str) -> ExecutionRecord | None:
        self.claimed.set()
        await self.release.wait()
        return await super().claim(key, arguments_digest)


async def report_policy(arguments: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
    return ToolOutcome(f"max_output={ctx.policy.max_output}")


REPORT = Tool("test.report", "Reports its policy.", Risk.LOW, report_policy, schema={})


async def test_a_running_call_keeps_its_policy_and_the_next_call_gets_the_new_one(
    workspace: Workspace, policy_path: Path, start_service: Any, agent: Bus, call: Call
) -> None:
    initial = policy_text(workspace, ["test.report"])
    executor = await start_watching(start_service, policy_path, initial)
    executor.engine.add(REPORT)
    held = HeldRuns(executor.engine.ledger)
    executor.engine.ledger = held
    key = f"k-{uuid.uuid4().hex[:8]}"
    request = ExecuteRequest(tool="test.report", caller="agent", idempotency_key=key)
    running = asyncio.ensure_future(agent.request(TOOLS_EXECUTE, request, timeout=20))
    await held.claimed.wait()

    edited = policy_text(workspace, ["test.report", "fs.read"], max_output=2000)
    replace_file(policy_path, edited)
    await eventually(allowed(call, "fs.read", path="file.txt"), what="the edit applied")
    held.release.set()

    assert (await running).result.content == "max_output=1000"
    assert (await call("test.report")).content == "max_output=2000"
