"""Ordered escalation rules: the first rule whose ``match`` holds decides.

An event is reduced to :class:`Facts` (event name, interface or package, semver
change, compatibility verdict, how it relates to this component); a rule's
``match`` is a conjunction over those facts. When no rule matches, an event
unrelated to the component is ignored (``builtin:unrelated``), any other gets
the ``default_action``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from packaging.version import InvalidVersion
from packaging.version import Version as PackageVersion

from agentbus.maintainer.context import ComponentContext

Relation = Literal["provides", "consumes", "declares", "unrelated"]
Change = Literal["patch", "minor", "major", "none", "downgrade"]


@dataclass(frozen=True, slots=True)
class Facts:
    """What matters about an event for one component."""

    event: str
    relation: Relation
    interface: str | None = None
    package: str | None = None
    change: Change | None = None
    compatibility: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """An action, why, and which rule said so."""

    action: str
    reason: str
    rule: str


def change_kind(old: str, new: str) -> Change:
    """The semver change from ``old`` to ``new`` (PEP 440 versions are read as release tuples)."""
    try:
        a, b = PackageVersion(old), PackageVersion(new)
    except InvalidVersion:
        return "major"  # unknown shapes are treated as the riskiest change
    if b < a:
        return "downgrade"
    ra, rb = (*a.release, 0, 0)[:3], (*b.release, 0, 0)[:3]
    if ra[0] != rb[0]:
        return "major"
    if ra[1] != rb[1]:
        return "minor"
    if ra[2] != rb[2] or a != b:
        return "patch"
    return "none"


def interface_facts(component: ComponentContext, payload: Any) -> Facts:
    relation: Relation = "unrelated"
    if payload.interface in component.interface_versions("provides"):
        relation = "provides"
    elif payload.interface in component.interface_versions("consumes"):
        relation = "consumes"
    return Facts(
        event="interface.changed",
        relation=relation,
        interface=payload.interface,
        change=change_kind(payload.old_version, payload.new_version),
        compatibility=payload.compatibility,
    )


def dependency_facts(component: ComponentContext, payload: Any) -> Facts:
    return Facts(
        event="dependency.updated",
        relation="declares" if component.declares(payload.package) else "unrelated",
        package=payload.package,
        change=change_kind(payload.from_version, payload.to_version),
    )


def matches(match: dict[str, Any], facts: Facts) -> bool:
    if "event" in match and match["event"] != facts.event:
        return False
    if "interface" in match:
        if facts.interface is None:
            return False
        if match["interface"] == "*":
            if facts.relation not in ("provides", "consumes"):
                return False
        elif match["interface"] != facts.interface:
            return False
    if "package" in match:
        if facts.package is None:
            return False
        if match["package"] == "*":
            if facts.relation != "declares":
                return False
        elif match["package"].lower() != facts.package.lower():
            return False
    if "change" in match and facts.change not in match["change"]:
        return False
    if "compatibility" in match and facts.compatibility not in match["compatibility"]:
        return False
    return not ("relation" in match and facts.relation not in match["relation"])


def evaluate(config: dict[str, Any], facts: Facts) -> Decision:
    """The first matching rule's decision; else ignore-if-unrelated; else the default."""
    for rule in config["escalation_rules"]:
        if matches(rule.get("match", {}), facts):
            return Decision(rule["action"], rule["reason"], rule["name"])
    if facts.relation == "unrelated":
        return Decision("ignore", "the event does not concern this component", "builtin:unrelated")
    return Decision(
        config["default_action"], "no rule matched; the default action applies", "default"
    )
