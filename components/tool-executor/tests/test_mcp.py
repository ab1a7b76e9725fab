"""MCP both ways, with the official SDK's own client: our server over stdio and streamable
HTTP, and an external server's tools imported behind the same policy."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx2
import mcp_types
import pytest
import uvicorn
from executor_helpers import Workspace
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agentbus.framework import Bus, RemoteError, Settings
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    Completed,
    ExecuteRequest,
    ListToolsRequest,
)
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.mcp_server import http_app, http_token

FAKE_SERVER = Path(__file__).parent / "fixtures" / "fake_mcp_server.py"
IN_SANDBOX = {"python": True, "read_roots": [str(FAKE_SERVER.parent)]}
"""What the fake server needs in the sandbox: the executor's Python and its own file."""


def policies(workspace: Workspace) -> dict[str, Any]:
    return {
        "executor": {"relays": ["mcp"]},
        "policy": {
            "agent": {
                "roots": [str(workspace.ws)],
                "tools": ["fs.read", "fs.write", "shell.exec"],
                "commands": ["echo"],
                "medium": "ask",
            }
        },
    }


def text_of(result: mcp_types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


async def exercise(client: Client, workspace: Workspace) -> None:
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert names == {"fs.read", "fs.write", "shell.exec"}
    hints = {
        t.name: (t.annotations.read_only_hint, t.annotations.destructive_hint)
        for t in listed.tools
        if t.annotations is not None
    }
    assert hints == {
        "fs.read": (True, False),
        "fs.write": (False, True),
        "shell.exec": (False, True),
    }
    read = await client.call_tool("fs.read", {"path": "file.txt"})
    assert not read.is_error
    assert text_of(read) == "one\ntwo\nthree\n"
    outside = await client.call_tool("fs.read", {"path": "../outside/secret.txt"})
    assert outside.is_error
    assert text_of(outside).startswith("forbidden:")
    ask = await client.call_tool("fs.write", {"path": "x.txt", "content": "x"})
    assert ask.is_error
    assert "approval required" in text_of(ask)
    assert ask.structured_content["status"] == "approval_required"
    denied_tool = await client.call_tool("git.status", {})
    assert denied_tool.is_error
    assert "forbidden" in text_of(denied_tool)
    assert not (workspace.ws / "x.txt").exists()


async def test_stdio_server_under_the_callers_policy(
    workspace: Workspace, start_executor: Any, nats_url: str, tmp_path: Path
) -> None:
    await start_executor(policies(workspace))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentbus.framework.cli", "tools", "mcp", "--caller", "agent"],
        env={
            "AGENTBUS_NATS_URL": nats_url,
            "AGENTBUS_DATA_DIR": str(tmp_path / "state"),
            "AGENTBUS_NATS_NKEY_FILE": os.environ["AGENTBUS_NATS_NKEY_FILE"],
        },
    )
    async with Client(params, mode="legacy") as client:
        await exercise(client, workspace)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_streamable_http_server_under_the_callers_policy(
    workspace: Workspace, start_executor: Any, settings: Settings
) -> None:
    await start_executor(policies(workspace))
    port = free_port()
    async with Bus(settings, Source("mcp", "pytest")) as bus:
        app = http_app(bus, "agent", "127.0.0.1", "s3cret-token")
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        serving = asyncio.ensure_future(server.serve())
        try:
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.02)
            url = f"http://127.0.0.1:{port}/mcp"
            async with httpx2.AsyncClient() as anonymous:
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    refused = await anonymous.post(url, json={}, headers=headers)
                    assert refused.status_code == 401
                    assert "Authorization: Bearer" in refused.text
            authorized = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-token"})
            async with (
                authorized,
                Client(
                    streamable_http_client(url, http_client=authorized), mode="legacy"
                ) as client,
            ):
                await exercise(client, workspace)
        finally:
            server.should_exit = True
            await serving


async def test_external_mcp_tools_are_imported_behind_the_policy(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    config = {
        "mcp_servers": {
            "fake": {
                "command": sys.executable,
                "args": [str(FAKE_SERVER), str(workspace.outside)],
                "roots": [str(workspace.outside)],  # where scribble writes
                **IN_SANDBOX,
            }
        },
        "policy": {
            "agent": {
                "roots": [str(workspace.ws)],
                "tools": ["mcp.fake.echo", "mcp.fake.scribble"],
                "medium": "run",
                "risk": {"mcp.fake.scribble": "high"},
            }
        },
    }
    await start_executor(config)
    bus: Bus = await bus_as("agent")
    listed = await bus.request(TOOLS_LIST, ListToolsRequest(caller="agent"))
    specs = {t.name: t for t in listed.tools}
    assert set(specs) == {"mcp.fake.echo", "mcp.fake.scribble"}
    assert specs["mcp.fake.echo"].source == "mcp:fake"
    assert specs["mcp.fake.echo"].input_schema["required"] == ["text"]

    async def call(tool: str, **arguments: Any) -> Any:
        request = ExecuteRequest(tool=tool, arguments=arguments, caller="agent")
        return (await bus.request(TOOLS_EXECUTE, request, timeout=20)).result

    echoed = await call("mcp.fake.echo", text="hi there")
    assert isinstance(echoed, Completed)
    assert echoed.content == "hi there"
    with pytest.raises(RemoteError) as off_schema:
        await call("mcp.fake.echo", text=5)
    assert off_schema.value.code == "schema_violation"
    with pytest.raises(RemoteError) as not_allowed:
        await call("mcp.fake.add", a=1, b=2)
    assert not_allowed.value.code == "forbidden"
    gated = await call("mcp.fake.scribble", name="written.txt")
    assert gated.status == "approval_required"
    assert not (workspace.outside / "written.txt").exists()


async def test_an_imported_server_gets_no_credentials_of_the_executor(
    workspace: Workspace, start_executor: Any, bus_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaked = {
        "AGENTBUS_NATS_PASSWORD": "hunter2",
        "AGENTBUS_NATS_TOKEN": "tok-123",
        "AGENTBUS_NATS_CREDS_FILE": "/secrets/bus.creds",
        "OPENAI_API_KEY": "sk-test",
    }
    for name, value in leaked.items():
        monkeypatch.setenv(name, value)
    config = {
        "mcp_servers": {
            "fake": {
                "command": sys.executable,
                "args": [str(FAKE_SERVER), str(workspace.outside)],
                "roots": [str(workspace.outside)],  # where scribble writes
                "env": {"DOCS_API_TOKEN": "granted-to-this-server"},
                **IN_SANDBOX,
            }
        },
        "policy": {"agent": {"tools": ["mcp.fake.environment"], "medium": "run"}},
    }
    await start_executor(config)
    bus: Bus = await bus_as("agent")
    request = ExecuteRequest(tool="mcp.fake.environment", arguments={}, caller="agent")
    result = (await bus.request(TOOLS_EXECUTE, request, timeout=20)).result
    assert isinstance(result, Completed)
    env = dict(line.split("=", 1) for line in result.content.splitlines())
    assert not env.keys() & leaked.keys(), sorted(env)
    assert not set(env.values()) & set(leaked.values())
    assert env["DOCS_API_TOKEN"] == "granted-to-this-server"
    # Not even the LOGNAME, SHELL, TERM and USER the SDK adds when the executor has them;
    # PWD is the server's folder (bubblewrap sets it).
    allowed = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD", "DOCS_API_TOKEN"}
    assert env.keys() <= allowed, sorted(env)
    assert env["HOME"] == env["TMPDIR"] != os.environ.get("HOME")


def test_the_http_token_comes_from_the_environment_or_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBUS_MCP_TOKEN", "chosen")
    assert http_token(tmp_path) == ("chosen", None)

    monkeypatch.delenv("AGENTBUS_MCP_TOKEN")
    token, path = http_token(tmp_path)
    assert path == tmp_path / "mcp-token"
    assert path.read_text().strip() == token
    assert len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert http_token(tmp_path)[0] != token  # a new one at every start
