"""``agentbus js``: the JetStream streams and KV buckets agentbus declares, on which
servers, with how many replicas; ``upgrade`` raises their replicas (R1 to R3)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from nats.js.api import StreamInfo

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, options, run, with_bus
from agentbus.framework.cli.status_cmd import _table
from agentbus.framework.jetstream import KV_STREAM_PREFIX, declare_all, upgrade_replicas

app = typer.Typer(help="JetStream: streams, buckets, replicas.", no_args_is_help=True)

STREAM_PREFIX = "AGENTBUS_"
BUCKET_PREFIX = "agentbus_"


def is_ours(name: str) -> bool:
    """Whether stream ``name`` is one agentbus declares (``AGENTBUS_*``, KV ``agentbus_*``)."""
    return name.startswith((STREAM_PREFIX, KV_STREAM_PREFIX + BUCKET_PREFIX))


def describe(info: StreamInfo) -> dict[str, Any]:
    """One stream or bucket: its name, replicas, leader, each follower's state, size."""
    name = info.config.name or "?"
    bucket = name.startswith(KV_STREAM_PREFIX)
    cluster = info.cluster
    peers = (cluster.replicas or []) if cluster is not None else []
    followers = [
        {"name": peer.name, "current": bool(peer.current), "lag": peer.lag or 0}
        | {"offline": bool(peer.offline)}
        for peer in peers
    ]
    return {
        "kind": "kv" if bucket else "stream",
        "name": name.removeprefix(KV_STREAM_PREFIX) if bucket else name,
        "stream": name,
        "replicas": info.config.num_replicas or 1,
        "leader": cluster.leader if cluster is not None else None,
        "followers": followers,
        "messages": info.state.messages,
        "bytes": info.state.bytes,
    }


async def _ours(bus: Bus) -> list[StreamInfo]:
    return sorted(
        (info for info in await bus.js.streams_info() if is_ours(info.config.name or "")),
        key=lambda info: info.config.name or "",
    )


def _servers(bus: Bus, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The servers named by the resources' leaders and followers, and the connected one."""
    connected = str(bus.nc._server_info.get("server_name") or "")
    names: dict[str, bool] = {connected: False} if connected else {}
    for resource in resources:
        if resource["leader"]:
            names.setdefault(resource["leader"], False)
        for follower in resource["followers"]:
            offline = names.get(follower["name"], False) or follower["offline"]
            names[follower["name"]] = offline
    return [
        {"name": name, "connected": name == connected, "offline": offline}
        for name, offline in sorted(names.items())
    ]


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The cluster's servers, and every stream and KV bucket agentbus declared: replicas,
    leader, followers (current or lagging by how many operations), messages, bytes."""

    async def work(bus: Bus) -> dict[str, Any]:
        resources = [describe(info) for info in await _ours(bus)]
        urls = [url.geturl() for url in bus.nc.servers]
        return {"servers": _servers(bus, resources), "urls": urls, "resources": resources}

    found = run(with_bus(options(ctx), work))
    if as_json:
        console.print(json.dumps(found), markup=False, soft_wrap=True)
        return
    servers = _table()
    for header in ("server", "connected", "state"):
        servers.add_column(header, overflow="fold")
    for server in found["servers"]:
        state = "offline" if server["offline"] else "up"
        servers.add_row(server["name"], "yes" if server["connected"] else "", state)
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
            for info in await _ours(bus)
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
