"""Ordered escalation rules, change kinds and subject matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbus.interfaces.catalog.maintenance import DependencyUpdated
from agentbus.interfaces.catalog.system import InterfaceChanged
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.decide import parse_answer
from agentbus.maintainer.rules import (
    Decision,
    Facts,
    change_kind,
    dependency_facts,
    evaluate,
    interface_facts,
)
from agentbus.maintainer.service import subject_matches
from agentbus.maintainer.testing import SAMPLE

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sample() -> ComponentContext:
    return ComponentContext.load(SAMPLE)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("1.0.0", "1.0.1", "patch"),
        ("1.0.0", "1.1.0", "minor"),
        ("1.9.3", "2.0.0", "major"),
        ("2.0.0", "1.9.0", "downgrade"),
        ("1.0", "1.0.0", "none"),
        ("1.0.0", "1.0.0.post1", "patch"),
        ("1.0.0", "not-a-version", "major"),
    ],
)
def test_change_kind(old: str, new: str, kind: str) -> None:
    assert change_kind(old, new) == kind


def change(interface: str, compatibility: str, new: str = "1.1.0") -> InterfaceChanged:
    return InterfaceChanged(
        interface=interface,
        old_version="1.0.0",
        new_version=new,
        compatibility=compatibility,  # type: ignore[arg-type]
    )


def test_relations(sample: ComponentContext) -> None:
    assert interface_facts(sample, change("sample.greet", "compatible")).relation == "provides"
    assert interface_facts(sample, change("model.catalog", "compatible")).relation == "consumes"
    assert interface_facts(sample, change("tools.list", "compatible")).relation == "unrelated"
    update = DependencyUpdated(package="GreetLib", from_version="1.0.0", to_version="1.0.1")
    assert dependency_facts(sample, update).relation == "declares"  # names are canonicalised
    other = DependencyUpdated(package="httpx", from_version="1.0.0", to_version="1.0.1")
    assert dependency_facts(sample, other).relation == "unrelated"


def test_the_first_matching_rule_decides(sample: ComponentContext) -> None:
    breaking = interface_facts(sample, change("model.catalog", "breaking", "2.0.0"))
    assert evaluate(sample.config, breaking) == Decision(
        "escalate",
        "A breaking interface change needs code changes a person approves first.",
        "breaking change of an interface we use or serve",
    )
    compatible = interface_facts(sample, change("sample.greet", "compatible"))
    assert evaluate(sample.config, compatible).action == "act"
    major = dependency_facts(
        sample, DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="2.0.0")
    )
    assert evaluate(sample.config, major).rule == "major update of a dependency"


def test_unrelated_events_are_ignored_unless_a_rule_says_otherwise(
    sample: ComponentContext,
) -> None:
    facts = Facts(event="dependency.updated", relation="unrelated", package="numpy", change="patch")
    assert evaluate(sample.config, facts).rule == "builtin:unrelated"
    config = {
        **sample.config,
        "escalation_rules": [
            {
                "name": "watch numpy",
                "match": {"package": "numpy"},
                "action": "escalate",
                "reason": "we vendor numpy data",
            }
        ],
    }
    assert evaluate(config, facts).rule == "watch numpy"


def test_the_default_action_applies_to_related_events_no_rule_matches(
    sample: ComponentContext,
) -> None:
    facts = Facts(event="dependency.updated", relation="declares", package="x", change="downgrade")
    assert evaluate(sample.config, facts) == Decision(
        "ask-model", "no rule matched; the default action applies", "default"
    )


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("agentbus.events.interface.changed.v1", "agentbus.events.interface.changed.v1", True),
        ("agentbus.events.*.changed.v1", "agentbus.events.interface.changed.v1", True),
        ("agentbus.events.>", "agentbus.events.interface.changed.v1", True),
        ("agentbus.events.dependency.updated.v1", "agentbus.events.interface.changed.v1", False),
        ("agentbus.events.interface.changed", "agentbus.events.interface.changed.v1", False),
        ("agentbus.events.interface.changed.v1.>", "agentbus.events.interface.changed.v1", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"action": "ignore", "reason": "unrelated"}', ("ignore", "unrelated")),
        ('Here: {"action": "escalate"}', ("escalate", "the model gave no reason")),
        ('{"action": "deploy-now"}', None),
        ("no json at all", None),
        ("{not json}", None),
    ],
)
def test_parse_answer(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_answer(text) == expected
