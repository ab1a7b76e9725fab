"""Imported MCP stdio servers in the sandbox for their whole life (issue 13, item 1): a real
MCP server over stdio (the fixture) that sees only its roots, has no network unless its
entry says so, and leaves no process behind when the executor stops it."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import SECRET, FakeWeb, Workspace

from agentbus.framework import Bus
from agentbus.interfaces.catalog.tools import TOOLS_EXECUTE, Completed, ExecuteRequest
from agentbus.tool_executor.mcp_import import McpImports
from agentbus.tool_executor.policy import McpServerConfig
from agentbus.tool_executor.sandbox import PIDS_HIERARCHY, sandbox

FAKE_SERVER = Path(__file__).parent / "fixtures" / "fake_mcp_server.py"
LINGER = "31.3"
"""How long the fixture's lingering process sleeps: no other process on the machine does."""

needs_bwrap = pytest.mark.skipif(
    sandbox().bwrap is None, reason=f"needs the bubblewrap sandbox: {sandbox().reason}"
)


def fake(**entry: Any) -> dict[str, Any]:
    """An [mcp_servers] entry of the fixture server with what it needs in the sandbox."""
    return {
        "command": sys.executable,
        "args": [str(FAKE_SERVER)],
        "python": True,
        "read_roots": [str(FAKE_SERVER.parent)],
        **entry,
    }


async def call(bus: Bus, tool: str, **arguments: Any) -> str:
    request = ExecuteRequest(tool=tool, arguments=arguments, caller="agent")
    result = (await bus.request(TOOLS_EXECUTE, request, timeout=20)).result
    assert isinstance(result, Completed), result
    return result.content


@needs_bwrap
async def test_a_sandboxed_server_sees_only_its_roots_and_no_network(
    workspace: Workspace, web: FakeWeb, start_executor: Any, bus_as: Any
) -> None:
    config = {
        "mcp_servers": {
            "boxed": fake(roots=[str(workspace.ws)]),
            "online": fake(network=True),
            "bare": fake(sandbox=False),
        },
        "policy": {"agent": {"tools": ["mcp.*"], "medium": "run"}},
    }
    await start_executor(config)
    bus: Bus = await bus_as("agent")
    secret = str(workspace.outside / "secret.txt")

    assert await call(bus, "mcp.boxed.read", path=str(workspace.ws / "file.txt")) == (
        "one\ntwo\nthree\n"
    )
    refused = await call(bus, "mcp.boxed.read", path=secret)
    assert refused.startswith("error:"), refused
    assert SECRET not in refused
    executor_environ = await call(bus, "mcp.boxed.read", path=f"/proc/{os.getpid()}/environ")
    assert executor_environ.startswith("error:"), executor_environ
    offline = await call(bus, "mcp.boxed.connect", host="127.0.0.1", port=web.port)
    assert offline.startswith("error:"), offline

    # The same server with network = true reaches the listener, and with sandbox = false
    # reads the secret: what the sandbox took away was there to take.
    assert await call(bus, "mcp.online.connect", host="127.0.0.1", port=web.port) == "connected"
    assert SECRET in await call(bus, "mcp.bare.read", path=secret)


def _lingering() -> list[int]:
    """Running (not zombie) processes whose command line is ``sleep LINGER``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if cmdline.read() != b"sleep\0" + LINGER.encode() + b"\0":
                    continue
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                if stat.read().split(")")[-1].split()[0] != "Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited 5 s for {what}")
        time.sleep(0.05)


async def test_every_process_of_a_server_dies_when_it_is_stopped(tmp_path: Path) -> None:
    if sandbox().bwrap is None and not os.access(PIDS_HIERARCHY, os.W_OK):
        pytest.skip("needs bubblewrap or a writable pids cgroup hierarchy")
    imports = McpImports({"fake": McpServerConfig.model_validate(fake())})
    await imports.start()
    try:
        assert (await imports.connections[0].call("linger", {"seconds": LINGER}, 10)).content
        _wait_until(_lingering, "the server's setsid sleep to start")
    finally:
        await imports.stop()
    _wait_until(lambda: not _lingering(), "the server's setsid sleep to be killed")


@needs_bwrap
async def test_a_server_the_sandbox_would_not_show_is_refused_saying_what_to_add(
    tmp_path: Path,
) -> None:
    script = tmp_path / "server.py"
    shutil.copy(FAKE_SERVER, script)
    no_python = McpImports({"s": McpServerConfig(command=sys.executable, args=(str(script),))})
    with pytest.raises(RuntimeError, match="add python = true"):
        await no_python.start()
    no_script = McpImports(
        {"s": McpServerConfig(command=sys.executable, args=(str(script),), python=True)}
    )
    with pytest.raises(RuntimeError, match=f"argument {script} .* add its folder to read_roots"):
        await no_script.start()
    shown = McpServerConfig.model_validate(
        {**fake(), "args": [str(script)], "read_roots": [str(tmp_path)]}
    )
    seen = McpImports({"s": shown})
    await seen.start()  # what the messages said to add is enough
    await seen.stop()


async def test_sandbox_false_runs_the_server_unconfined_with_a_warning(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    imports = McpImports(
        {"bare": McpServerConfig(command=sys.executable, args=(str(FAKE_SERVER),), sandbox=False)}
    )
    with caplog.at_level(logging.WARNING, logger="agentbus.tool_executor.mcp"):
        await imports.start()
    try:
        read = await imports.connections[0].call(
            "read", {"path": str(workspace.outside / "secret.txt")}, 10
        )
        assert SECRET in read.content
    finally:
        await imports.stop()
    assert "runs outside the sandbox (sandbox = false)" in caplog.text
