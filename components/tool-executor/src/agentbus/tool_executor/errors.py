"""Errors of the tool executor.

::

    ToolError                     a call that cannot be served; carries a bus error code
    ├── Refused                   the policy says no (code ``forbidden``)
    └── ToolFailed                the tool could not do what was asked (code ``invalid``
                                  unless the tool chose another, e.g. ``not_found``)

Every ``ToolError`` becomes an error reply (``ServiceError``) at the service
boundary and an ``is_error`` result over MCP.
"""

from __future__ import annotations

from typing import Any

from agentbus.interfaces.error_reply import ErrorCode


class ToolError(Exception):
    """A tool call that ends in a structured error."""

    code: str = ErrorCode.INVALID

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class Refused(ToolError):
    """The caller's policy does not allow this call."""

    code = ErrorCode.FORBIDDEN


class ToolFailed(ToolError):
    """The tool ran into something it cannot do (missing search text, not a file, ...)."""
