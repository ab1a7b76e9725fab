"""Maintenance: what component maintainers hear about and what they leave behind.

``dependency.updated`` is broadcast when a new version of a package is out (by a
release watcher, a person, or ``agentbus publish``). Every maintainer hears it
and decides for its own component. Each decision is a :class:`MaintainerDecision`
on ``agentbus.audit.<component>.decision``; work that needs a person is a
:class:`Escalation` on ``agentbus.escalations.<component>``. These two records
travel on the audit and escalation streams, not on event subjects, so they are
versioned models here rather than registered interfaces.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from agentbus.interfaces.message import BusMessage, event_interface

Action = Literal["ignore", "act", "escalate", "ask-model"]
"""What a maintainer does about an event (``ask-model`` resolves to one of the others)."""


class DependencyUpdated(BusMessage):
    """A new version of a package was released."""

    package: str = Field(min_length=1, description="Distribution name, e.g. httpx.")
    from_version: str = Field(description="The version in use (or the newest known before).")
    to_version: str = Field(description="The new version.")
    ecosystem: Literal["pypi"] = "pypi"


DEPENDENCY_UPDATED = event_interface(
    "dependency.updated",
    "1.0.0",
    payload=DependencyUpdated,
    description="Broadcast when a package has a new release; maintainers decide per component.",
)


class MaintainerDecision(BusMessage):
    """One decision of a component's maintainer about one event (the audit record)."""

    id: str
    component: str
    event: str = Field(description="The event interface, e.g. dependency.updated.")
    event_id: str = Field(description="The event's message id.")
    summary: str = Field(description="One line describing the event.")
    action: Literal["ignore", "act", "escalate"]
    reason: str
    rule: str = Field(description="The matching rule's name, or builtin:* / default / model.")
    outcome: str = Field(
        default="decided",
        description="decided, promoted, escalated, failed, observed or resumed: what came of it.",
    )
    details: dict[str, JsonValue] = Field(default_factory=dict)
    at: str = Field(description="ISO 8601 UTC time.")


EscalationStatus = Literal["open", "approved", "rejected", "resuming", "done", "failed"]


class Escalation(BusMessage):
    """Work a maintainer paused for a person (or a managing agent) to approve or reject."""

    id: str
    component: str
    status: EscalationStatus = "open"
    reason: str
    rule: str
    event: str
    payload: dict[str, JsonValue] = Field(description="The event that caused it.")
    report: dict[str, JsonValue] = Field(
        default_factory=dict, description="Test matrix, branch, commit: what was found."
    )
    resume: str = Field(description="What approval resumes: promote, update, code-change.")
    target: str = Field(default="", description="Who is asked (agent-config escalation_target).")
    note: str = ""
    created_at: str
    resolved_at: str | None = None
    resolved_by: str | None = None


INTERFACES = (DEPENDENCY_UPDATED,)
