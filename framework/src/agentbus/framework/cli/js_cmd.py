"""``agentbus js``: the JetStream streams and KV buckets agentbus declares, on which
servers, with how many replicas; ``upgrade`` raises their replicas (R1 to R3)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import nats.errors
import typer
from nats.js.api import StreamInfo

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, options, run, with_bus
from agentbus.framework.cli.status_cmd import _table
from agentbus.framework.errors import BusError
from agentbus.framework.jetstream import KV_STREAM_PREFIX, declare_all, upgrade_replicas

app = typer.Typer(help="JetStream: streams, buckets, replicas.", no_args_is_help=True)

API_TIMEOUT = 10.0
QUIET = 5.0
"""A follower not heard from for longer is shown as unseen (the server flags it offline
only later)."""
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
        | {"offline": bool(peer.offline), "seen": round((peer.active or 0) / 1e9, 1)}
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
    try:
        found = await bus.nc.jetstream(timeout=API_TIMEOUT).streams_info()
    except nats.errors.TimeoutError:
        raise BusError(
            f"JetStream did not list its streams within {API_TIMEOUT:g}s: a cluster that just "
            "lost a node elects new leaders for a few seconds (try again), one without a "
            "majority of its nodes cannot answer (start them)"
        ) from None
    return sorted(
        (info for info in found if is_ours(info.config.name or "")),
        key=lambda info: info.config.name or "",
    )


def _servers(bus: Bus, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The servers named by the resources' leaders and followers, and the connected one:
    ``up`` (connected, leading, or a follower heard from lately), ``offline`` (flagged by
    the cluster), else ``unseen``."""
    connected = str(bus.nc._server_info.get("server_name") or "")
    states: dict[str, str] = {connected: "up"} if connected else {}
    for resource in resources:
        if resource["leader"]:
            states[resource["leader"]] = "up"
        for follower in resource["followers"]:
            name = follower["name"]
            if follower["offline"]:
                states[name] = "offline"
            elif (
                follower["current"] and follower["seen"] <= QUIET and states.get(name) != "offline"
            ):
                states[name] = "up"
            else:
                states.setdefault(name, "unseen")
    return [
        {"name": name, "connected": name == connected, "state": state}
        for name, state in sorted(states.items())
    ]


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The cluster's servers, and every stream and KV bucket agentbus declared: replicas,
    leader, followers (ok, lagging by how many operations, unseen for how long, or
    offline), messages, bytes."""

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
