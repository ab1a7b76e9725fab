"""Subject builders: the only place where subject strings are spelled.

Requests go to ``agentbus.<domain>.<name>.v<major>`` (the interface name already
starts with its domain), events to ``agentbus.events.<domain>.<name>.v<major>``.
A subject carries only the major version: every minor of one major is served
by the same subscribers.
"""

from __future__ import annotations

import re
from typing import Any

from agentbus.interfaces.message import Interface, InterfaceKind

PREFIX = "agentbus"
EVENTS = f"{PREFIX}.events"
ESCALATIONS = f"{PREFIX}.escalations"
AUDIT = f"{PREFIX}.audit"
DEAD_LETTER = f"{PREFIX}.deadletter"
DIRECT = f"{PREFIX}.direct"
RUNS = f"{PREFIX}.runs"
WORKFLOWS = f"{PREFIX}.workflows"

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def token(value: str) -> str:
    """Check that ``value`` is one subject token (no dots, wildcards or spaces)."""
    if not _TOKEN_RE.match(value):
        raise ValueError(
            f"{value!r} cannot be a subject token: use letters, digits, '-' and '_' only"
        )
    return value


def request_subject(name: str, major: int) -> str:
    """``agentbus.model.language.generate.v1`` for ``model.language.generate`` major 1."""
    return f"{PREFIX}.{name}.v{major}"


def event_subject(name: str, major: int, *, qualifier: str | None = None) -> str:
    """``agentbus.events.<name>.v<major>``, optionally followed by one qualifier token."""
    subject = f"{EVENTS}.{name}.v{major}"
    return subject if qualifier is None else f"{subject}.{token(qualifier)}"


def as_caller(subject: str, identity: str) -> str:
    """``<subject>.<identity>``: a request subject with its caller's identity as last token.

    On a server with agentbus permissions an identity may publish requests only with its
    own name there, so the token is what the server vouches for (see ``framework/auth``).
    """
    return f"{subject}.{token(identity)}"


def callers(subject: str) -> str:
    """``<subject>.*``: what a service subscribes to, every caller's copy of ``subject``."""
    return f"{subject}.*"


def caller_of(subject: str) -> str:
    """The identity token a request subject ends with (see :func:`as_caller`)."""
    return subject.rsplit(".", 1)[-1]


def subject_for(interface: Interface[Any, Any]) -> str:
    """The subject an interface's messages travel on."""
    if interface.kind is InterfaceKind.EVENT:
        return event_subject(interface.name, interface.version.major)
    return request_subject(interface.name, interface.version.major)


def events_wildcard() -> str:
    """Every event: ``agentbus.events.>``."""
    return f"{EVENTS}.>"


def escalation_subject(component: str) -> str:
    return f"{ESCALATIONS}.{token(component)}"


def audit_subject(component: str, kind: str) -> str:
    return f"{AUDIT}.{token(component)}.{token(kind)}"


def dead_letter_subject(service: str, original: str) -> str:
    """Where a message that kept failing in ``service`` is parked, keeping its subject."""
    return f"{DEAD_LETTER}.{token(service)}.{original}"


def direct_subject(instance: str, name: str, major: int) -> str:
    """``agentbus.direct.<instance>.<name>.v<major>``: one instance's own copy of an endpoint.

    Blue/green deployment smoke-tests a new version here before it may join the
    production subject (where any new queue group would get a copy of all traffic).
    """
    return f"{DIRECT}.{token(instance)}.{name}.v{major}"


def run_events_subject(run_id: str) -> str:
    """``agentbus.runs.<run id>.events``: the progress events of one workflow run."""
    return f"{RUNS}.{token(run_id)}.events"


def runs_wildcard() -> str:
    """Every workflow run's subjects: ``agentbus.runs.>``."""
    return f"{RUNS}.>"


def workflow_dispatch_subject() -> str:
    """``agentbus.workflows.dispatch``: where workflow runs are handed to a runner."""
    return f"{WORKFLOWS}.dispatch"


def workflow_control_subject(run_id: str | None = None) -> str:
    """``agentbus.workflows.control.<run id>``: control messages (cancel...) for one run;
    without a run id, the wildcard every runner replica listens on."""
    return f"{WORKFLOWS}.control.{'*' if run_id is None else token(run_id)}"
