"""``agentbus tools list|run|mcp`` and ``agentbus approvals list|approve|deny``.

Everything goes over the bus to a running tool executor (``agentbus up``), so
the CLI gets the same policies, approvals and audit as any agent. The CLI
connects as its identity (the operator's, under ``agentbus up``) and uses that
identity's policy; to act as another identity with ``--caller`` the policy file
must list the CLI's identity (``operator``) under ``[executor] relays``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer
from rich.table import Column, Table

from agentbus.framework import Bus, ConfigError, to_json
from agentbus.framework.cli import (
    by_prefix,
    console,
    err_console,
    options,
    parse_json,
    print_json,
    run,
    with_bus,
)
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    APPROVALS_LIST,
    TOOLS_EXECUTE,
    TOOLS_LIST,
    ApprovalStatus,
    DecideRequest,
    ExecuteRequest,
    ListApprovalsRequest,
    ListToolsRequest,
)
from agentbus.interfaces.metadata import Source, new_id

app = typer.Typer(help="Tools of the tool executor: list, run, serve over MCP.")
approvals_app = typer.Typer(help="Tool calls waiting for a human decision.")

CallerOption = Annotated[
    str | None,
    typer.Option("--caller", help="The identity whose policy applies (default: yours)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list")
def list_tools(
    ctx: typer.Context, caller: CallerOption = None, as_json: JsonOption = False
) -> None:
    """List the tools a caller may use, with their risk."""

    async def work(bus: Bus) -> list[dict[str, Any]]:
        reply = await bus.request(TOOLS_LIST, ListToolsRequest(caller=caller or bus.identity))
        return [json.loads(to_json(spec)) for spec in reply.tools]

    tools = run(with_bus(options(ctx), work))
    if as_json:
        print_json(tools)
        return
    if not tools:
        console.print(f"no tools for {caller!r} (see the policy file)")
        return
    table = Table("tool", "risk", "description")
    for spec in tools:
        table.add_row(spec["name"], spec["risk"], spec["description"].split("\n")[0])
    console.print(table)


@app.command("run")
def run_tool(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool name, e.g. fs.read.")],
    args: Annotated[str, typer.Option("--args", help="Arguments as JSON, or @file.json.")] = "{}",
    caller: CallerOption = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Retry key (approvals, replays).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 120.0,
) -> None:
    """Run a tool and print its result (or the approval it waits for)."""
    arguments = parse_json(args, "--args")
    if not isinstance(arguments, dict):
        raise ConfigError("--args must be a JSON object")

    async def work(bus: Bus) -> dict[str, Any]:
        request = ExecuteRequest(
            tool=tool,
            arguments=arguments,
            caller=caller or bus.identity,
            idempotency_key=idempotency_key,
        )
        reply = await bus.request(TOOLS_EXECUTE, request, timeout=timeout)
        result: dict[str, Any] = json.loads(to_json(reply.result))
        return result

    result = run(with_bus(options(ctx), work))
    print_json(result)
    if result["status"] == "approval_required":
        raise typer.Exit(3)
    if result.get("exit_code") not in (None, 0):
        raise typer.Exit(1)


@app.command("mcp")
def mcp(
    ctx: typer.Context,
    caller: Annotated[str, typer.Option("--caller", help="Whose policy MCP clients get.")],
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
) -> None:
    """Serve the caller's tools as an MCP server (stdio, or streamable HTTP on /mcp)."""
    from agentbus.tool_executor.mcp_server import (
        RELAY_COMPONENT,
        http_token,
        serve_http,
        serve_stdio,
    )

    settings = options(ctx).settings()
    token, token_file = http_token(settings.data_dir) if http else ("", None)
    if token_file is not None:
        err_console.print(
            f"MCP over HTTP on http://{host}:{port}/mcp: clients send Authorization: Bearer "
            f"<the token in {token_file}> (or set AGENTBUS_MCP_TOKEN to choose it)"
        )

    async def serve() -> None:
        async with Bus(settings, Source(RELAY_COMPONENT, new_id()[:8])) as bus:
            if http:
                await serve_http(bus, caller, host, port, token)
            else:
                await serve_stdio(bus, caller)

    run(serve())


@approvals_app.command("list")
def approvals_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="pending, approved, denied or executed (default: all).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List approval requests, oldest first."""
    if status not in (None, "pending", "approved", "denied", "executed"):
        raise ConfigError(f"unknown status {status!r}: use pending, approved, denied or executed")
    wanted: ApprovalStatus | None = status  # type: ignore[assignment]

    async def work(bus: Bus) -> list[dict[str, Any]]:
        reply = await bus.request(APPROVALS_LIST, ListApprovalsRequest(status=wanted))
        return [json.loads(to_json(a)) for a in reply.approvals]

    approvals = run(with_bus(options(ctx), work))
    if as_json:
        print_json(approvals)
        return
    if not approvals:
        console.print("no approvals")
        return
    # nothing cut (an id must stay whole to be named): long values fold onto more lines
    columns = ("id", "status", "caller", "tool", "risk", "requested", "arguments")
    table = Table(*(Column(name, overflow="fold") for name in columns))
    for a in approvals:
        table.add_row(
            a["approval_id"],
            a["status"],
            a["caller"],
            a["tool"],
            a["risk"],
            a["requested_at"],
            json.dumps(a["arguments"])[:80],
        )
    console.print(table)


def _decide(
    ctx: typer.Context,
    approval_id: str,
    decision: Literal["approve", "deny"],
    by: str,
    note: str | None,
) -> None:
    async def work(bus: Bus) -> dict[str, Any]:
        known = await bus.request(APPROVALS_LIST, ListApprovalsRequest(status=None))
        found = by_prefix(
            approval_id,
            (a.approval_id for a in known.approvals),
            "approval",
            listed_by="approvals list",
        )
        request = DecideRequest(approval_id=found, decision=decision, decided_by=by, note=note)
        reply = await bus.request(APPROVALS_DECIDE, request)
        approval: dict[str, Any] = json.loads(to_json(reply.approval))
        return approval

    approval = run(with_bus(options(ctx), work))
    console.print(
        f"{approval['approval_id']}: {approval['status']} ({approval['tool']} for "
        f"{approval['caller']})"
    )


ByOption = Annotated[str, typer.Option("--by", help="Who decides (recorded).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why (recorded).")]


ApprovalIdArgument = Annotated[
    str, typer.Argument(help="The approval id, or a unique prefix of it.")
]


@approvals_app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: ApprovalIdArgument,
    by: ByOption = "cli",
    note: NoteOption = None,
) -> None:
    """Approve a pending call; it runs when retried with its idempotency key."""
    _decide(ctx, approval_id, "approve", by, note)


@approvals_app.command("deny")
def deny(
    ctx: typer.Context,
    approval_id: ApprovalIdArgument,
    by: ByOption = "cli",
    note: NoteOption = None,
) -> None:
    """Deny a pending call; retries are refused."""
    _decide(ctx, approval_id, "deny", by, note)
