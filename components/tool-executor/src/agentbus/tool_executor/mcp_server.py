"""An MCP server (official ``mcp`` SDK) exposing the tools one caller identity may use.

It holds no tools of its own: ``tools/list`` and ``tools/call`` become
``tools.list`` and ``tools.execute`` requests to the executor over the bus,
naming the configured caller, so MCP clients get exactly that caller's policy,
risk checks, approvals and audit. The server connects as component ``mcp``,
which must be listed under ``[executor] relays`` to speak for another identity.

A call that needs approval returns an error result naming the approval id and
the idempotency key to retry with; tool errors return ``is_error`` results.

* stdio: ``agentbus tools mcp --caller coder``
* streamable HTTP: ``agentbus tools mcp --caller coder --http --port 8765``
"""

from __future__ import annotations

import json
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
)

RELAY_COMPONENT = "mcp"
IDEMPOTENCY_ARGUMENT = "_idempotency_key"


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


async def serve_http(bus: Bus, caller: str, host: str, port: int) -> None:
    import uvicorn

    server = build_server(bus, caller)
    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    await uvicorn.Server(config).serve()
