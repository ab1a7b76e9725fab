"""Tools of external MCP servers (stdio), imported into the catalog as ``mcp.<server>.<tool>``.

Each configured server is started once, when the executor starts, and kept
connected by a task of its own (the SDK's client must be entered and left in
one task). Its tools join the catalog with the server's configured risk
(default medium) and the input schema the server declares; the engine checks
arguments against that schema (:meth:`Tool.parse`) before any approval is asked
for or the call leaves. Policies allow them like any other tool
(``tools = ["mcp.docs.*"]``), and approvals and audit apply.
What the external tool then does is up to that server: the executor's path
and host checks do not reach inside it.

A server starts from the executor's minimal child environment
(:mod:`agentbus.tool_executor.environment`: the executor's ``PATH``, the locale,
``HOME`` and ``TMPDIR`` in a private folder kept while it runs) plus its configured
``env``; never the executor's own environment, and not the ``LOGNAME``, ``SHELL``,
``TERM`` and ``USER`` the SDK would add (``env -u`` removes them).

A server runs in the sandbox (:mod:`agentbus.tool_executor.sandbox`) for its whole
life: only the system's programs (read-only), its ``roots`` (writable), ``read_roots``
(read-only), its private HOME and, with ``python = true``, the executor's Python exist
in it; no network unless ``network = true``; its limits (``max_memory_mb``,
``max_processes``, ``max_cpu_seconds``); its own ``pids`` cgroup, every process of
which is killed when the executor stops it (and bubblewrap's PID namespace ends them
anyway). A server whose command or file arguments the sandbox would not show is
refused at start, saying what to add. ``sandbox = false`` runs it unconfined, logged
as a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment
from pydantic import JsonValue

from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.declaration import Tool, ToolContext, ToolOutcome
from agentbus.tool_executor.environment import child_environment, with_scratch
from agentbus.tool_executor.errors import ToolFailed
from agentbus.tool_executor.policy import DEFAULT_PATH, McpServerConfig
from agentbus.tool_executor.sandbox import (
    Confinement,
    joined,
    limited,
    pids_group,
    sandbox,
    visible,
)

log = logging.getLogger("agentbus.tool_executor.mcp")

START_TIMEOUT = 30.0


def result_text(result: mcp_types.CallToolResult) -> str:
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    return "\n".join(parts)


class McpConnection:
    """One external MCP server, connected for the executor's lifetime."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self.client: Client | None = None
        self.tools: list[mcp_types.Tool] = []
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def start(self) -> None:
        if not self.config.sandbox:
            log.warning(
                "MCP server %s runs outside the sandbox (sandbox = false): it can read and "
                "write whatever the executor can and use the network",
                self.name,
            )
        elif (box := sandbox()).bwrap is None:
            log.warning("MCP server %s runs with resource limits only: %s", self.name, box.reason)
        self._task = asyncio.get_running_loop().create_task(self._hold())
        waiter = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait(
            {waiter, self._task}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if not self._ready.is_set():
            await self.stop()
            raise RuntimeError(
                f"MCP server {self.name!r} did not start: {self._error or 'timed out'}"
            )

    def environment(self, scratch: str) -> dict[str, str]:
        """Everything the server's process gets: nothing of the executor's own but PATH."""
        base = child_environment(
            path=os.environ.get("PATH") or DEFAULT_PATH, extra=dict(self.config.env)
        )
        return with_scratch(base, scratch)

    def parameters(self, scratch: Path, group: Path | None) -> StdioServerParameters:
        """How the SDK starts the server: in its sandbox and cgroup unless ``sandbox =
        false``, with exactly :meth:`environment`. Raises :class:`ToolFailed` saying what to
        configure when the sandbox would not show the server's command or files."""
        env = self.environment(str(scratch))
        cwd = self.config.cwd or scratch
        argv = [self.config.command, *self.config.args]
        if self.config.sandbox:
            confine = self.config.confinement(scratch)
            box = sandbox()
            if box.bwrap is not None:
                self._check_visible(argv, cwd, env["PATH"], confine)
            argv = limited(box.wrap(argv, cwd, scratch, confine), confine)
        # The SDK puts some of the executor's variables under ``env``: take them out again.
        added = sorted(set(get_default_environment()) - set(env))
        if added:
            argv = ["env", *(arg for name in added for arg in ("-u", name)), *argv]
        argv = joined(argv, group)
        return StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)

    def _check_visible(self, argv: list[str], cwd: Path, path: str, confine: Confinement) -> None:
        command = shutil.which(argv[0], path=path) if "/" not in argv[0] else str(cwd / argv[0])
        if command is None:
            raise ToolFailed(f"MCP server {self.name}: command {argv[0]!r} is not on PATH {path}")
        if not visible(command, confine):
            raise ToolFailed(
                f"MCP server {self.name}: its command {command} is not visible in the sandbox: "
                "add python = true (the executor's Python) or its folder to read_roots"
            )
        for arg in argv[1:]:
            if os.path.isabs(arg) and os.path.exists(arg) and not visible(arg, confine):
                raise ToolFailed(
                    f"MCP server {self.name}: its argument {arg} is not visible in the "
                    "sandbox: add its folder to read_roots (or to roots if it writes there)"
                )
        if not visible(str(cwd), confine):
            raise ToolFailed(
                f"MCP server {self.name}: its cwd {cwd} is not visible in the sandbox: add it "
                "to roots or read_roots"
            )

    async def _hold(self) -> None:
        scratch = tempfile.mkdtemp(prefix=f"agentbus-mcp-{self.name}-")
        limit = self.config.max_processes if self.config.sandbox else 0
        try:
            with pids_group(limit) as group:
                params = self.parameters(Path(scratch), group)
                async with Client(params, mode="legacy") as client:
                    self.tools = list((await client.list_tools()).tools)
                    self.client = client
                    self._ready.set()
                    await self._stop.wait()
        except Exception as exc:
            self._error = exc
            log.warning("MCP server %s failed: %s", self.name, exc)
        finally:
            self.client = None
            shutil.rmtree(scratch, ignore_errors=True)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            if not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task})

    async def call(self, tool: str, arguments: Mapping[str, Any], timeout: float) -> ToolOutcome:
        if self.client is None:
            raise ToolFailed(f"MCP server {self.name} is not connected", code=ErrorCode.UNAVAILABLE)
        try:
            result = await asyncio.wait_for(self.client.call_tool(tool, dict(arguments)), timeout)
        except TimeoutError:
            raise ToolFailed(
                f"mcp.{self.name}.{tool} did not answer within {timeout:g}s", code=ErrorCode.TIMEOUT
            ) from None
        except Exception as exc:
            raise ToolFailed(
                f"mcp.{self.name}.{tool} failed: {exc}", code=ErrorCode.UPSTREAM
            ) from None
        text = result_text(result)
        if result.is_error:
            raise ToolFailed(f"mcp.{self.name}.{tool}: {text}", code=ErrorCode.UPSTREAM)
        data: dict[str, JsonValue] = {}
        if isinstance(result.structured_content, dict):
            data = result.structured_content
        return ToolOutcome(text, data=data)

    def declare(self) -> list[Tool]:
        declared = []
        for remote in self.tools:
            schema: dict[str, JsonValue] = dict(remote.input_schema)
            declared.append(
                Tool(
                    name=f"mcp.{self.name}.{remote.name}",
                    description=remote.description or f"{remote.name} from MCP server {self.name}",
                    risk=self.config.risk,
                    function=self._function(remote.name),
                    schema=schema,
                    source=f"mcp:{self.name}",
                )
            )
        return declared

    def _function(self, remote: str) -> Any:
        async def call(arguments: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
            return await self.call(remote, arguments, ctx.timeout(None))

        return call


class McpImports:
    """Every configured external MCP server."""

    def __init__(self, servers: Mapping[str, McpServerConfig]) -> None:
        self.connections = [McpConnection(name, config) for name, config in servers.items()]

    async def start(self) -> list[Tool]:
        tools: list[Tool] = []
        for connection in self.connections:
            await connection.start()
            tools += connection.declare()
        return tools

    async def stop(self) -> None:
        for connection in self.connections:
            await connection.stop()
