"""agentbus workflow runner: durable agent workflows on NATS JetStream.

Write workflows with :class:`WorkflowApp`, :class:`RunContext` and :func:`step`; the
presets (``tool_loop``, ``react``, ``reflection``) are in :mod:`.presets`.
"""

from agentbus.workflow_runner.definition import StartWorkflow, Workflow, WorkflowApp, step
from agentbus.workflow_runner.errors import RunFailed, WorkflowDefinitionError, WorkflowError
from agentbus.workflow_runner.journal import step_key
from agentbus.workflow_runner.run_context import RunContext, ToolFailure

__all__ = [
    "RunContext",
    "RunFailed",
    "StartWorkflow",
    "ToolFailure",
    "Workflow",
    "WorkflowApp",
    "WorkflowDefinitionError",
    "WorkflowError",
    "step",
    "step_key",
]
