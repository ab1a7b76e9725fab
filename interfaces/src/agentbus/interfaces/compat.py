"""Compatibility of two versions of a message schema (pydantic v2 JSON Schema).

Models on the bus are closed (``additionalProperties: false``) and consumers upgrade
first, so a change is compatible only if every message valid under the *old* schema
is still valid under the *new* one (backward, as Confluent Schema Registry and
``buf breaking`` define it). Local ``$ref`` s are resolved and each ref pair is
compared once (so recursive models terminate, and a shared model's findings are
reported at its first use); ``anyOf [X, null]`` reads as "X or null". Paths follow
the old schema's structure (``/properties/a/items/properties/b``), not ``$defs``.

========================  ==========  ==================================================
kind                      result      change
========================  ==========  ==================================================
field_removed             BREAKING    field dropped from a closed model (COMPATIBLE if
                                      the new model accepts extra fields)
type_changed              BREAKING    incompatible type, or narrowed (e.g. null dropped)
required_added            BREAKING    new required field
optional_became_required  BREAKING    existing field became required
enum_value_removed        BREAKING    enum value removed (``const_changed``: const)
constraint_tightened      BREAKING    bound raised/lowered or added, pattern / format /
                                      multipleOf / uniqueItems added or changed
closed                    BREAKING    ``additionalProperties: false`` added
variant_removed           BREAKING    union variant (or discriminator tag) removed
discriminator_changed     BREAKING    tagged union switched to another tag property
keyword_changed           BREAKING    any keyword this module does not model changed
field_added               COMPATIBLE  new optional field
enum_value_added          COMPATIBLE  enum value added (const -> enum too)
constraint_loosened       COMPATIBLE  any constraint above relaxed or removed
type_widened              COMPATIBLE  integer -> number, X -> X | null, type dropped
required_became_optional  COMPATIBLE  required field became optional
opened                    COMPATIBLE  extra fields now accepted
variant_added             COMPATIBLE  union variant added
default_changed           COMPATIBLE  default added, changed or removed
(no finding)              NONE        same structure after ``$ref`` resolution (``$defs``
                                      renames), title / description / examples /
                                      ``$comment`` / deprecated / readOnly / writeOnly /
                                      ``x-*`` changes
========================  ==========  ==================================================

Unmodelled keywords (``not``, ``if``, ``contains``, ``propertyNames``, many-entry
``allOf``, remote ``$ref`` ...) are compared for equality: nothing proves a change to a
keyword of unknown meaning harmless, so any difference is BREAKING. A new optional
field is COMPATIBLE even where the old model was open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agentbus.interfaces._schema_diff import Comparer
from agentbus.interfaces.findings import BREAKING, COMPATIBLE, NONE, Compatibility, Finding
from agentbus.interfaces.semver import Version

__all__ = [
    "Compatibility",
    "CompatibilityReport",
    "Finding",
    "check_version_bump",
    "compare_schemas",
]


@dataclass(frozen=True)
class CompatibilityReport:
    """All findings, and the worst one's compatibility (NONE without findings)."""

    compatibility: Compatibility
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> list[str]:
        return [f.message for f in sorted(self.findings, key=lambda f: f.path)]

    def required_bump(self) -> Literal["none", "minor", "major"]:
        if self.compatibility == BREAKING:
            return "major"
        return "minor" if self.compatibility == COMPATIBLE else "none"


def compare_schemas(old: Mapping[str, Any], new: Mapping[str, Any]) -> CompatibilityReport:
    """Classify the change from ``old`` to ``new`` (both JSON Schemas)."""
    comparer = Comparer((old, new))
    comparer.compare(old, new, "")
    findings = tuple(sorted(dict.fromkeys(comparer.findings), key=lambda f: f.path))
    return CompatibilityReport(max((f.compatibility for f in findings), default=NONE), findings)


def check_version_bump(
    old_version: str, new_version: str, report: CompatibilityReport
) -> list[str]:
    """Problems with releasing ``report``'s change as ``old_version`` -> ``new_version``."""
    old, new = Version.parse(old_version), Version.parse(new_version)
    change = f"({'; '.join(report.reasons)}), but {old_version} -> {new_version} is not one"
    if report.compatibility == BREAKING:
        if new.major > old.major or (old.major == new.major == 0 and new.minor > old.minor):
            return []
        if old.major == 0:
            hint = f"0.{old.minor + 1}.0"
            return [f"breaking change needs a minor bump below 1.0.0 {change} (e.g. {hint})"]
        return [f"breaking change needs a major version bump {change} (e.g. {old.major + 1}.0.0)"]
    if report.compatibility == COMPATIBLE and (new.major, new.minor) <= (old.major, old.minor):
        hint = f"{old.major}.{old.minor + 1}.0"
        return [f"compatible change needs at least a minor version bump {change} (e.g. {hint})"]
    return []
