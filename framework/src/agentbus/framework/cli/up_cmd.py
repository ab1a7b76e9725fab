"""``agentbus up`` (a supervised local cluster) and ``agentbus serve`` (one service)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from agentbus.framework.auth.cluster import cluster_identities
from agentbus.framework.bus import resolve_nats_url
from agentbus.framework.cli.common import console, load_registry, options
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.runner import load_service, serve
from agentbus.framework.supervisor import ClusterFile, Supervisor


def up(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="Cluster file listing the services to run.")
    ] = Path("agentbus.toml"),
    port: Annotated[
        int | None, typer.Option(help="Embedded NATS port (overrides the file; 0: any).")
    ] = None,
    nats_cluster: Annotated[
        int | None,
        typer.Option(
            "--nats-cluster",
            min=1,
            max=7,
            help="Embedded nats-servers routed into a JetStream cluster (3: survives the loss "
            "of one; overrides the file's [nats] cluster). Streams and buckets get 3 replicas.",
        ),
    ] = None,
) -> None:
    """Start embedded NATS and the cluster file's services; restart crashes; Ctrl-C stops all.

    Every start writes the cluster's identities (as `agentbus auth init` does: existing keys
    are kept) under <data dir>/auth; the embedded server admits only them, each service
    connects with its own key and the CLI with the operator's."""
    cluster = ClusterFile.load(file)
    if port is not None:
        cluster.nats.port = port
    if nats_cluster is not None:
        cluster.nats.cluster = nats_cluster
    opts = options(ctx)
    if opts.nats_url:
        cluster.nats.url = opts.nats_url
    settings = opts.settings()
    supervisor = Supervisor(
        cluster,
        settings.data_dir,
        identities=cluster_identities(cluster, load_registry()),
        log=lambda line: console.print(f"[bold blue]up[/] {line}"),
        grace=settings.shutdown_grace,
    )
    supervisor.run()


def serve_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="The service class, as module:Class.")],
    instance: Annotated[str | None, typer.Option(help="Instance id (default: random).")] = None,
) -> None:
    """Run one service until SIGTERM / Ctrl-C. Without a NATS URL, starts an embedded server."""
    opts = options(ctx)
    settings = opts.settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(message)s",
        handlers=[RichHandler(show_path=False, console=console)],
    )
    cls = load_service(target)
    embedded: EmbeddedNats | None = None
    url = resolve_nats_url(settings)
    if url is None:
        embedded = EmbeddedNats(settings.data_dir, write_url_file=True).start()
        url = embedded.url
        console.print(f"embedded nats-server on {url}")
    try:
        asyncio.run(serve(cls(settings, instance=instance, url=url)))
    finally:
        if embedded is not None:
            embedded.stop()
