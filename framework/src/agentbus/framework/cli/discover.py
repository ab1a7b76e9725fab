"""Find running services through ``$SRV.INFO`` / ``$SRV.STATS`` (many replies per request)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from agentbus.framework.bus import Bus


async def gather(bus: Bus, subject: str, wait: float = 0.5) -> list[dict[str, Any]]:
    """Send one request and collect every reply that arrives within ``wait`` seconds."""
    inbox = bus.new_inbox()
    replies: list[dict[str, Any]] = []
    subscription = await bus.nc.subscribe(inbox)
    try:
        await bus.nc.publish(subject, b"", reply=inbox)
        deadline = asyncio.get_running_loop().time() + wait
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await subscription.next_msg(timeout=left)
            except TimeoutError:
                break
            with contextlib.suppress(ValueError):
                replies.append(json.loads(msg.data))
    finally:
        await subscription.unsubscribe()
    return replies


async def services(bus: Bus, wait: float = 0.5) -> list[dict[str, Any]]:
    """INFO of every running instance, with its STATS merged in as ``stats``."""
    infos, stats = await asyncio.gather(
        gather(bus, "$SRV.INFO", wait), gather(bus, "$SRV.STATS", wait)
    )
    by_id = {s.get("id"): s for s in stats}
    for info in infos:
        info["stats"] = by_id.get(info.get("id"), {})
    return sorted(infos, key=lambda i: (i.get("name", ""), i.get("id", "")))


async def endpoint_for(bus: Bus, interface: str, wait: float = 0.5) -> dict[str, Any] | None:
    """The endpoint (subject, interface version) that serves ``interface``, if any runs."""
    for info in await gather(bus, "$SRV.INFO", wait):
        for endpoint in info.get("endpoints") or []:
            metadata = endpoint.get("metadata") or {}
            if metadata.get("interface") == interface:
                return dict(endpoint)
    return None
