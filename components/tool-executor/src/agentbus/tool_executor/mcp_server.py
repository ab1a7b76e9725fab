"""An MCP server (official ``mcp`` SDK) exposing the tools one caller identity may use.

It holds no tools of its own: ``tools/list`` and ``tools/call`` become
``tools.list`` and ``tools.execute`` requests to the executor over the bus,
naming the configured caller, so MCP clients get exactly that caller's policy,
risk checks, approvals and audit. The server connects as component ``mcp``,
which must be listed under ``[executor] relays`` to speak for another identity.

A call that needs approval returns an error result naming the approval id and
the idempotency key to retry with; tool errors return ``is_error`` results.

* stdio: ``agentbus tools mcp --caller coder``
* streamable HTTP: ``agentbus tools mcp --caller coder --http --port 8765``; every HTTP
  request must carry ``Authorization: Bearer <token>`` (:class:`BearerToken`): the token
  is ``AGENTBUS_MCP_TOKEN``, or one made at start and written to ``<data dir>/mcp-token``
  (mode 0600), never printed.

Each tool carries MCP annotations from its risk: low risk is
read-only, medium and high may change things (``destructiveHint``), ``http.*`` and
imported tools reach the open world (:func:`tool_annotations`).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from agentbus.framework import Bus, RemoteError
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    ApprovalRequired,
    ExecuteRequest,
    ListToolsRequest,
    Risk,
)

RELAY_COMPONENT = "mcp"
IDEMPOTENCY_ARGUMENT = "_idempotency_key"
TOKEN_ENV = "AGENTBUS_MCP_TOKEN"  # noqa: S105 - the variable's name, not a token
TOKEN_FILE = "mcp-token"  # noqa: S105 - a file name


def tool_annotations(name: str, risk: str) -> types.ToolAnnotations:
    """MCP's hints for a tool of ``risk``: clients decide from them what to confirm."""
    read_only = risk == Risk.LOW
    return types.ToolAnnotations(
        title=name,
        read_only_hint=read_only,
        destructive_hint=not read_only,
        open_world_hint=name.startswith(("http.", "mcp.")),
    )


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UNAUTHORIZED = (
    b"send Authorization: Bearer <token> (AGENTBUS_MCP_TOKEN, or the token file "
    b"`agentbus tools mcp --http` named when it started)"
)


class BearerToken:
    """ASGI middleware: a request without ``Authorization: Bearer <token>`` gets 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": UNAUTHORIZED})
                return
        await self.app(scope, receive, send)


def http_token(data_dir: Path) -> tuple[str, Path | None]:
    """The token HTTP clients must send: ``AGENTBUS_MCP_TOKEN``, else a new one written to
    ``<data dir>/mcp-token`` (0600; its path is returned to be shown, the token never)."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given, None
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, token.encode() + b"\n")
    finally:
        os.close(descriptor)
    return token, path


def _text(text: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=text)]


def _with_key(schema: dict[str, Any]) -> dict[str, Any]:
    """The tool's schema plus the optional ``_idempotency_key`` this server understands."""
    properties = dict(schema.get("properties") or {})
    properties[IDEMPOTENCY_ARGUMENT] = {
        "type": "string",
        "description": "Retry key: an approved call runs once when called again with its key.",
    }
    return {**schema, "properties": properties}


def build_server(bus: Bus, caller: str, *, timeout: float = 300.0) -> Server[Any]:
    """A low-level MCP server whose handlers forward to the executor as ``caller``."""

    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        reply = await bus.request(TOOLS_LIST, ListToolsRequest(caller=caller))
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=spec.name,
                    description=f"{spec.description}\n\n(risk: {spec.risk})",
                    input_schema=_with_key(dict(spec.input_schema)),
                    annotations=tool_annotations(spec.name, spec.risk),
                )
                for spec in reply.tools
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        key = arguments.pop(IDEMPOTENCY_ARGUMENT, None)
        request = ExecuteRequest(
            tool=params.name,
            arguments=arguments,
            caller=caller,
            idempotency_key=key if isinstance(key, str) and key else None,
        )
        try:
            reply = await bus.request(TOOLS_EXECUTE, request, timeout=timeout)
        except RemoteError as exc:
            return types.CallToolResult(
                content=_text(f"{exc.code}: {exc.reply.message}"),
                structured_content={"error": exc.reply.model_dump(mode="json")},
                is_error=True,
            )
        result = reply.result
        if isinstance(result, ApprovalRequired):
            return types.CallToolResult(
                content=_text(
                    f"approval required ({result.risk} risk): approval id {result.approval_id}. "
                    f"Once approved, call again with _idempotency_key={result.idempotency_key!r}."
                ),
                structured_content=result.model_dump(mode="json"),
                is_error=True,
            )
        summary = result.content
        if result.exit_code is not None:
            summary += (
                f"\n[exit code {result.exit_code}{', timed out' if result.timed_out else ''}]"
            )
        if result.truncated:
            summary += "\n[output truncated]"
        return types.CallToolResult(
            content=_text(summary),
            structured_content=json.loads(result.model_dump_json()),
        )

    return Server(
        f"agentbus-tools-{caller}",
        version="0.1.0",
        instructions=f"agentbus tools under the policy of {caller!r}.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(bus: Bus, caller: str) -> None:
    server = build_server(bus, caller)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(bus: Bus, caller: str, host: str, token: str) -> ASGIApp:
    """The streamable HTTP app (``/mcp``) behind :class:`BearerToken`."""
    return BearerToken(build_server(bus, caller).streamable_http_app(host=host), token)


async def serve_http(bus: Bus, caller: str, host: str, port: int, token: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        http_app(bus, caller, host, token), host=host, port=port, log_level="warning"
    )
    await uvicorn.Server(config).serve()
