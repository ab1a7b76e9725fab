"""The ``agentbus`` command line. ``python -m agentbus.framework.cli`` runs it too.

A component adds its commands as a Typer app under the ``agentbus.cli`` entry point group,
built with the helpers exported here (options, a connected bus, JSON output, discovery).
"""

from agentbus.framework.cli.common import (
    Options,
    by_prefix,
    console,
    err_console,
    load_registry,
    options,
    parse_json,
    print_json,
    print_json_lines,
    run,
    with_bus,
)
from agentbus.framework.cli.discover import services
from agentbus.framework.cli.main import app, main

__all__ = [
    "Options",
    "app",
    "by_prefix",
    "console",
    "err_console",
    "load_registry",
    "main",
    "options",
    "parse_json",
    "print_json",
    "print_json_lines",
    "run",
    "services",
    "with_bus",
]
