"""Errors raised by ``agentbus.maintainer``.

::

    MaintainerError                      root of this package
    ├── ContextError (ValueError)        a component's context/ is missing or invalid
    └── FlowError (RuntimeError)         a flow could not run (git, lock, test command)

A flow that *runs* but finds a problem (a test that broke, a major bump) is
not an error: it ends in an escalation with the report.
"""

from __future__ import annotations


class MaintainerError(Exception):
    """Root of every error raised by ``agentbus.maintainer``."""


class ContextError(MaintainerError, ValueError):
    """The component's context/ folder is missing, unreadable or does not validate."""


class FlowError(MaintainerError, RuntimeError):
    """A step of a flow failed to run; the message names the step and its output."""
