"""``agentbus auth``: make a cluster's identities, and show who you are and what you may do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agentbus.framework.auth import AuthFolder
from agentbus.framework.auth.cluster import cluster_identities
from agentbus.framework.auth.credentials import identity_and_key
from agentbus.framework.cli.common import console, load_registry, options, print_json
from agentbus.framework.errors import ConfigError
from agentbus.framework.supervisor import ClusterFile

app = typer.Typer(
    help="Identities on the bus: one nkey per service of the cluster file, one for the "
    "operator (you, at the CLI); the nats-server agentbus starts admits only them.",
    no_args_is_help=True,
)


@app.command("init")
def init(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="Cluster file whose services get identities.")
    ] = Path("agentbus.toml"),
    rotate: Annotated[
        list[str] | None,
        typer.Option("--rotate", help="Make a new key for this identity (repeatable)."),
    ] = None,
) -> None:
    """Write <data dir>/auth: a 0600 seed per identity (kept when present) and the server's
    config of public keys and permissions. Run again after adding a service or an interface."""
    folder = AuthFolder.of(options(ctx).settings().data_dir)
    identities = cluster_identities(ClusterFile.load(file), load_registry())
    made = folder.write(identities, rotate=set(rotate or ()))
    console.print(
        f"identities in {folder.path}: {len(folder.records())} "
        f"({', '.join(made) + ' new' if made else 'no new keys'}); a running `agentbus up` "
        "applies them when restarted"
    )


@app.command("show")
def show(
    ctx: typer.Context,
    every: Annotated[bool, typer.Option("--all", help="Every identity, not only yours.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who this CLI connects as, and what that identity may publish and subscribe to."""
    settings = options(ctx).settings()
    folder = AuthFolder.of(settings.data_dir)
    records = folder.records()
    if every:
        shown: list[dict[str, Any]] = records
    else:
        identity, key = identity_and_key(settings, "cli", patient=False)
        if key is None:
            raise ConfigError(
                f"no key for identity {identity!r}: run `agentbus auth init` (keys go to "
                f"{folder.path}) or set AGENTBUS_NATS_NKEY_FILE"
            )
        record = folder.identity_of(key)
        shown = [record or {"name": identity, "role": "?", "grants": None, "key": str(key)}]
    if as_json:
        print_json(shown)
        return
    for record in shown:
        grants = record.get("grants") or {}
        table = Table(title=f"{record['name']} ({record.get('role')})", show_lines=False)
        table.add_column("may publish to")
        table.add_column("may subscribe to")
        publish, subscribe = grants.get("publish", []), grants.get("subscribe", [])
        for row in range(max(len(publish), len(subscribe))):
            table.add_row(
                publish[row] if row < len(publish) else "",
                subscribe[row] if row < len(subscribe) else "",
            )
        console.print(table)
        if grants.get("responses"):
            console.print("and may answer the requests it receives (allow_responses)")
