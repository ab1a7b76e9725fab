"""Errors of the workflow runner.

::

    WorkflowError                    root of this package
    ├── WorkflowDefinitionError      misuse: a bad workflow, step or route declaration (ValueError)
    ├── RunFailed                    the run ends as ``failed`` with this code and message
    │   └── NonDeterministicError    a replayed run took a different path than it recorded
    └── Interrupt                    control flow, never a failure:
        ├── Suspended                tool calls wait for approval; the run parks
        ├── Cancelled                the run was cancelled
        └── LeaseLost                another replica persisted this step first; stop quietly

Workflow code may catch :class:`RunFailed`; it must let :class:`Interrupt` through
(``except Exception`` in a workflow should re-raise it).
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from agentbus.interfaces.catalog.workflows import PendingApproval, RunError


class WorkflowError(Exception):
    """Root of every error raised by ``agentbus.workflow_runner``."""


class WorkflowDefinitionError(WorkflowError, ValueError):
    """A workflow, step or route is declared wrongly; the message says how to fix it."""


class RunFailed(WorkflowError):
    """Raise in a workflow to end the run as failed with a code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, JsonValue] = details

    def to_error(self) -> RunError:
        return RunError(code=self.code, message=self.message, details=self.details)


class NonDeterministicError(RunFailed):
    """The workflow asked for a different step than the one recorded at this index."""


class Interrupt(WorkflowError):
    """Control flow: the run stops executing without failing."""


class Suspended(Interrupt):
    """Tool calls wait for human decisions."""

    def __init__(self, pending: list[PendingApproval]) -> None:
        super().__init__(f"{len(pending)} tool call(s) wait for approval")
        self.pending = pending


class Cancelled(Interrupt):
    """The run was cancelled."""


class LeaseLost(Interrupt):
    """Another replica recorded this step first: it owns the run now."""
