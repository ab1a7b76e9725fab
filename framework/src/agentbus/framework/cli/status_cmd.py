"""``agentbus status``: the running services, found through the NATS service protocol,
and the NATS servers they run on."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, options, run, with_bus
from agentbus.framework.cli.discover import services
from agentbus.framework.cli.nats_servers import nats_nodes, nodes_line

NODES_TIMEOUT = 3.0
"""How long JetStream may take to name a cluster's nodes before status shows it without."""


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
    endpoints: Annotated[
        bool, typer.Option("--endpoints", help="List every instance's endpoint subjects too.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats: Annotated[
        bool,
        typer.Option(
            "--nats",
            help="With --json: an object of the services and the NATS nodes, not the list.",
        ),
    ] = False,
) -> None:
    """List the NATS nodes (a cluster's by name: connected, up, unseen or offline), then
    running services: name, version, instance, request and error counts, uptime;
    --endpoints lists their subjects too. Long values fold onto more lines, none is cut."""

    async def work(bus: Bus) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        if as_json and not nats:  # the list alone, as scripts read it
            return await services(bus, wait), None
        found, nodes = await asyncio.gather(services(bus, wait), nats_nodes(bus, NODES_TIMEOUT))
        return found, nodes

    found, nodes = run(with_bus(options(ctx), work))
    if as_json:
        shown: object = {"services": found, "nats": nodes} if nats else found
        console.print(json.dumps(shown), markup=False, soft_wrap=True)
        return
    if nodes is not None:
        console.print(nodes_line(nodes), markup=False)
    if not found:
        console.print("no services answered $SRV.INFO (is `agentbus up` running?)")
        raise typer.Exit(1)
    console.print(_instances(found))
    if endpoints:
        console.print(_endpoints(found))


def _table() -> Table:
    """Columns two spaces apart, no outer border: room for the values at 80 columns."""
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))


def _instances(found: list[dict[str, Any]]) -> Table:
    table = _table()
    for header in ("service", "version", "instance"):
        table.add_column(header, overflow="fold")
    for header in ("requests", "errors", "up"):
        table.add_column(header, justify="right", overflow="fold")
    for info in found:
        stats = info.get("stats") or {}
        counts = stats.get("endpoints") or []
        table.add_row(
            str(info.get("name", "?")),
            str(info.get("version", "?")),
            str(info.get("id", "?")),
            str(sum(e.get("num_requests", 0) for e in counts)),
            str(sum(e.get("num_errors", 0) for e in counts)),
            _uptime(stats.get("started")),
        )
    return table


def _endpoints(found: list[dict[str, Any]]) -> Table:
    table = _table()
    table.add_column("instance", overflow="fold")
    table.add_column("endpoint subjects", overflow="fold")
    for info in found:
        subjects = [str(e.get("subject", "")) for e in info.get("endpoints") or []]
        table.add_row(str(info.get("id", "?")), "\n".join(subjects) or "-")
    return table
