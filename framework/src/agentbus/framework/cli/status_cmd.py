"""``agentbus status``: the running services, found through the NATS service protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, options, run, with_bus
from agentbus.framework.cli.discover import services


def _uptime(started: str | None) -> str:
    if not started:
        return "?"
    try:
        when = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "?"
    seconds = int((datetime.now(UTC) - when).total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"


def status(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option(help="Seconds to wait for replies.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List running services: name, version, instance, endpoints, request and error counts."""

    async def work(bus: Bus) -> list[dict[str, Any]]:
        return await services(bus, wait)

    found = run(with_bus(options(ctx), work))
    if as_json:
        console.print(json.dumps(found), markup=False, soft_wrap=True)
        return
    if not found:
        console.print("no services answered $SRV.INFO (is `agentbus up` running?)")
        raise typer.Exit(1)
    table = Table("service", "version", "instance", "endpoints", "requests", "errors", "up")
    for info in found:
        stats = info.get("stats") or {}
        endpoints = stats.get("endpoints") or []
        table.add_row(
            info.get("name", "?"),
            info.get("version", "?"),
            info.get("id", "?"),
            "\n".join(e.get("subject", "") for e in info.get("endpoints") or []) or "-",
            str(sum(e.get("num_requests", 0) for e in endpoints)),
            str(sum(e.get("num_errors", 0) for e in endpoints)),
            _uptime(stats.get("started")),
        )
    console.print(table)
