"""The ``agentbus`` command line. ``python -m agentbus.framework.cli`` runs it too."""

from agentbus.framework.cli.main import app, main

__all__ = ["app", "main"]
