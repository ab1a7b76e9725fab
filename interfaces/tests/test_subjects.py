"""Subject builders: the only place subject strings are spelled."""

from __future__ import annotations

import pytest

from agentbus.interfaces import subjects
from agentbus.interfaces.message import BusMessage, event_interface, request_interface


class Ask(BusMessage):
    q: str


class Answer(BusMessage):
    a: str


def test_request_subject_carries_only_the_major() -> None:
    assert subjects.request_subject("model.language.generate", 1) == (
        "agentbus.model.language.generate.v1"
    )
    assert subjects.request_subject("model.language.generate", 12) == (
        "agentbus.model.language.generate.v12"
    )


def test_event_subject_with_and_without_qualifier() -> None:
    assert subjects.event_subject("task.done", 2) == "agentbus.events.task.done.v2"
    assert subjects.event_subject("task.done", 2, qualifier="tenant-7") == (
        "agentbus.events.task.done.v2.tenant-7"
    )


@pytest.mark.parametrize("bad", ["a.b", "a b", "*", ">", "", "ü"])
def test_qualifier_must_be_one_token(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be a subject token"):
        subjects.event_subject("task.done", 1, qualifier=bad)


@pytest.mark.parametrize("good", ["a", "A-b_9", "123"])
def test_token_accepts_plain_words(good: str) -> None:
    assert subjects.token(good) == good


def test_subject_for_follows_the_kind_and_every_minor_shares_it() -> None:
    ask_1_0 = request_interface("test.ask", "1.0.0", request=Ask, reply=Answer)
    ask_1_9 = request_interface("test.ask", "1.9.3", request=Ask, reply=Answer)
    ask_2 = request_interface("test.ask", "2.0.0", request=Ask, reply=Answer)
    told = event_interface("test.told", "3.1.0", payload=Ask)

    assert subjects.subject_for(ask_1_0) == subjects.subject_for(ask_1_9) == "agentbus.test.ask.v1"
    assert subjects.subject_for(ask_2) == "agentbus.test.ask.v2"
    assert subjects.subject_for(told) == "agentbus.events.test.told.v3"


def test_infrastructure_subjects() -> None:
    assert subjects.events_wildcard() == "agentbus.events.>"
    assert subjects.escalation_subject("planner") == "agentbus.escalations.planner"
    assert subjects.audit_subject("planner", "decision") == "agentbus.audit.planner.decision"
    assert subjects.dead_letter_subject("svc", "agentbus.events.x.y.v1") == (
        "agentbus.deadletter.svc.agentbus.events.x.y.v1"
    )
    with pytest.raises(ValueError, match="subject token"):
        subjects.audit_subject("planner", "a.b")
    with pytest.raises(ValueError, match="subject token"):
        subjects.dead_letter_subject("svc.x", "s")


def test_every_event_subject_is_under_the_events_wildcard() -> None:
    prefix = subjects.events_wildcard().removesuffix(">")
    assert subjects.event_subject("a.b", 1, qualifier="q").startswith(prefix)


def test_direct_subject_names_one_instance_and_the_major() -> None:
    assert subjects.direct_subject("hello-green-1", "test.ask", 2) == (
        "agentbus.direct.hello-green-1.test.ask.v2"
    )
    with pytest.raises(ValueError, match="cannot be a subject token"):
        subjects.direct_subject("a.b", "test.ask", 2)


def test_workflow_run_subjects() -> None:
    assert subjects.run_events_subject("r-1a2b") == "agentbus.runs.r-1a2b.events"
    assert subjects.runs_wildcard() == "agentbus.runs.>"
    assert subjects.workflow_dispatch_subject() == "agentbus.workflows.dispatch"
    assert subjects.workflow_control_subject("r-1") == "agentbus.workflows.control.r-1"
    assert subjects.workflow_control_subject() == "agentbus.workflows.control.*"
    with pytest.raises(ValueError, match="subject token"):
        subjects.run_events_subject("a.b")
