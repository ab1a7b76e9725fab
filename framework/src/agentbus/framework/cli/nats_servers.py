"""Which NATS servers a client can see, and in what state: the connected one, its cluster,
and the servers that agentbus's streams and buckets name as leaders and followers (a
client cannot list a cluster's nodes by name without the system account; the replicas of
the streams name them). ``agentbus js status`` and ``agentbus status`` show them."""

from __future__ import annotations

from typing import Any

import nats.errors
from nats.js.api import StreamInfo

from agentbus.framework.bus import Bus
from agentbus.framework.config import redact_url
from agentbus.framework.errors import BusError
from agentbus.framework.jetstream import KV_STREAM_PREFIX

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


async def ours(bus: Bus, timeout: float = API_TIMEOUT) -> list[StreamInfo]:
    """agentbus's streams and buckets, by name; a :class:`BusError` that says why when
    JetStream cannot list them within ``timeout`` seconds."""
    try:
        found = await bus.nc.jetstream(timeout=timeout).streams_info()
    except nats.errors.TimeoutError:
        raise BusError(
            f"JetStream did not list its streams within {timeout:g}s: a cluster that just "
            "lost a node elects new leaders for a few seconds (try again), one without a "
            "majority of its nodes cannot answer (start them)"
        ) from None
    return sorted(
        (info for info in found if is_ours(info.config.name or "")),
        key=lambda info: info.config.name or "",
    )


def server_states(bus: Bus, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


async def nats_nodes(bus: Bus, timeout: float) -> dict[str, Any]:
    """What ``agentbus status`` shows of NATS: ``cluster`` (its name, None for a single
    server), ``servers`` (as :func:`server_states`; a single server's is the connected one),
    ``routed`` (how many nodes the connected one knows, itself included), ``url`` (the
    connected one's, redacted) and ``error`` (why JetStream could not name the nodes, or
    None). Never raises for a JetStream that does not answer: the nodes are still shown."""
    info = bus.nc._server_info
    cluster = info.get("cluster")
    connected = bus.nc.connected_url
    found: dict[str, Any] = {
        "cluster": str(cluster) if cluster else None,
        "servers": server_states(bus, []),
        "routed": len(info.get("connect_urls") or []) or 1,
        "url": redact_url(connected.geturl()) if connected is not None else None,
        "error": None,
    }
    if not cluster:
        return found
    try:
        found["servers"] = server_states(bus, [describe(s) for s in await ours(bus, timeout)])
    except BusError as exc:
        found["error"] = str(exc)
    except nats.errors.Error as exc:  # JetStream off, or refused to this identity
        found["error"] = f"JetStream did not name the nodes: {exc!r}"
    return found


def nodes_line(nodes: dict[str, Any]) -> str:
    """One line: ``NATS cluster agentbus: n1, n2 (connected), n3 unseen``."""
    named = [
        server["name"]
        + (" (connected)" if server["connected"] else "")
        + ("" if server["state"] == "up" else f" {server['state']}")
        for server in nodes["servers"]
    ]
    if nodes["cluster"] is None:
        return f"NATS: one server, {nodes['url']} (not a cluster)"
    line = f"NATS cluster {nodes['cluster']}: {', '.join(named)}"
    unnamed = nodes["routed"] - len(nodes["servers"])  # a lost node leaves the routed
    if unnamed > 0:
        line += f"; {unnamed} more routed, named by no stream yet"
    if nodes["error"]:
        line += f" ({nodes['error']})"
    return line
