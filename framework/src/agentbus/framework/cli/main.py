"""The ``agentbus`` command: global options, sub-commands, one-line errors.

Components add sub-commands through the ``agentbus.cli`` entry-point group
(``name = "package.module:typer_app"``), so the framework never imports them.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from agentbus.framework.cli import (
    auth_cmd,
    bus_cmd,
    deploy_cmd,
    health_cmd,
    interfaces_cmd,
    js_cmd,
    status_cmd,
    up_cmd,
)
from agentbus.framework.cli.common import Options, err_console
from agentbus.framework.errors import FrameworkError
from agentbus.interfaces.errors import InterfaceError

app = typer.Typer(
    name="agentbus",
    help="agentbus: AI agents as services on a NATS message bus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            envvar="AGENTBUS_NATS_URL",
            help="NATS server URL (default: the one `agentbus up` started).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="AGENTBUS_DATA_DIR", help="State folder (.agentbus)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
) -> None:
    ctx.obj = Options(nats_url=nats_url, data_dir=data_dir, verbose=verbose)


app.command("up")(up_cmd.up)
app.command("serve")(up_cmd.serve_command)
app.command("status")(status_cmd.status)
app.command("health")(health_cmd.health)
app.command("publish")(bus_cmd.publish)
app.command("request")(bus_cmd.request)
app.add_typer(bus_cmd.events_app, name="events")
app.add_typer(bus_cmd.deadletters_app, name="deadletters")
app.add_typer(interfaces_cmd.app, name="interfaces")
app.add_typer(deploy_cmd.app, name="deploy")
app.add_typer(auth_cmd.app, name="auth")
app.add_typer(js_cmd.app, name="js")


def _load_plugins() -> None:
    for entry in entry_points(group="agentbus.cli"):
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken component must not break the whole CLI
            err_console.print(f"[yellow]warning:[/] cannot load `agentbus {entry.name}`: {exc}")
            continue
        app.add_typer(plugin, name=entry.name)


def main() -> None:
    """Run the CLI; known errors print one line (``-v`` for a traceback)."""
    _load_plugins()
    verbose = "-v" in sys.argv or "--verbose" in sys.argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()  # standalone: Typer prints usage errors and exits 2 on its own
    except (FrameworkError, InterfaceError) as exc:
        if verbose:
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}")  # messages may hold [brackets]
        sys.exit(2 if isinstance(exc, ValueError) else 1)
    except Exception as exc:
        if verbose:
            raise
        err_console.print(
            f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with -v for details)"
        )
        sys.exit(1)
