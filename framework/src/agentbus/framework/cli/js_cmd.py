"""``agentbus js``: the JetStream streams and KV buckets agentbus declares, on which
servers, with how many replicas; ``upgrade`` raises their replicas (R1 to R3)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, options, run, with_bus
from agentbus.framework.cli.nats_servers import QUIET, describe, ours, server_states
from agentbus.framework.cli.status_cmd import _table
from agentbus.framework.config import redact_url
from agentbus.framework.jetstream import declare_all, upgrade_replicas

app = typer.Typer(help="JetStream: streams, buckets, replicas.", no_args_is_help=True)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The cluster's servers, and every stream and KV bucket agentbus declared: replicas,
    leader, followers (ok, lagging by how many operations, unseen for how long, or
    offline), messages, bytes."""

    async def work(bus: Bus) -> dict[str, Any]:
        resources = [describe(info) for info in await ours(bus)]
        urls = [redact_url(url.geturl()) for url in bus.nc.servers]  # never a password
        return {"servers": server_states(bus, resources), "urls": urls, "resources": resources}

    found = run(with_bus(options(ctx), work))
    if as_json:
        console.print(json.dumps(found), markup=False, soft_wrap=True)
        return
    servers = _table()
    for header in ("server", "connected", "state"):
        servers.add_column(header, overflow="fold")
    for server in found["servers"]:
        servers.add_row(server["name"], "yes" if server["connected"] else "", server["state"])
    console.print(servers if found["servers"] else "one server, not a cluster (no names)")
    table = _table()
    for header in ("kind", "name", "R", "leader", "followers"):
        table.add_column(header, overflow="fold")
    for header in ("msgs", "bytes"):
        table.add_column(header, justify="right", overflow="fold")
    for resource in found["resources"]:
        table.add_row(
            resource["kind"],
            resource["name"],
            str(resource["replicas"]),
            resource["leader"] or "-",
            ", ".join(_follower(f) for f in resource["followers"]) or "-",
            str(resource["messages"]),
            str(resource["bytes"]),
        )
    if not found["resources"]:
        console.print("no agentbus streams yet (services declare them as they start)")
        raise typer.Exit(1)
    console.print(table)


def _follower(follower: dict[str, Any]) -> str:
    if follower["offline"]:
        return f"{follower['name']} offline"
    if follower["seen"] > QUIET:
        return f"{follower['name']} unseen {follower['seen']:.0f}s"
    if follower["current"]:
        return f"{follower['name']} ok"
    return f"{follower['name']} lag {follower['lag']}"


def upgrade(
    ctx: typer.Context,
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=5,
            help="Replicas (default: AGENTBUS_JS_REPLICAS, else 3 with several NATS URLs, else 1).",
        ),
    ] = None,
) -> None:
    """Raise every agentbus stream and bucket to REPLICAS (never lowers one), declaring
    the framework's own first. Needs the operator's key (services may not change streams)."""

    async def work(bus: Bus) -> list[str]:
        if replicas is not None:
            bus.replicas = replicas
        js = bus.jetstream(upgrade=True)
        await declare_all(js, bus.settings.jetstream_storage)
        return [
            info.config.name or "?"
            for info in await ours(bus)
            if await upgrade_replicas(js, info, bus.replicas) is not None
        ]

    changed = run(with_bus(options(ctx), work))
    console.print(
        f"raised to the asked replicas: {', '.join(changed)}"
        if changed
        else "every agentbus stream and bucket already has the asked replicas"
    )


app.command("status")(status)
app.command("upgrade")(upgrade)
