"""The registry of interface versions, and their JSON Schemas under version control.

Published schemas live in ``interfaces/schemas/<name>/<version>.json``. The
registry in code is the truth about what a version *is*; the files are the
record of what was *published*. :func:`check_registry` compares the two:

* a version whose schema differs from its published file changed in place;
* a new version is compared with the newest published one before it, and must
  carry the bump the change requires (breaking → major, compatible → minor).

Message and event schemas are compared old → new (services upgrade before their
callers). Reply schemas are compared new → old: old callers must read new replies.
Callers decode replies ignoring unknown fields, so a reply field added by the new
version is not a break.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentbus.interfaces.compat import (
    Compatibility,
    CompatibilityReport,
    Finding,
    check_version_bump,
    compare_schemas,
)
from agentbus.interfaces.errors import RegistryError, UnknownInterfaceError
from agentbus.interfaces.message import Interface
from agentbus.interfaces.semver import Version

AnyInterface = Interface[Any, Any]

# Kinds that, seen new → old on a reply, only mean "the new reply has more fields".
_TOLERATED_ON_REPLY = frozenset({"field_removed"})


class Registry:
    """Interface declarations by name and version."""

    def __init__(self, interfaces: Iterable[AnyInterface] = ()) -> None:
        self._by_key: dict[tuple[str, Version], AnyInterface] = {}
        for interface in interfaces:
            self.add(interface)

    def add(self, interface: AnyInterface) -> AnyInterface:
        key = (interface.name, interface.version)
        existing = self._by_key.get(key)
        if existing is not None and existing != interface:
            raise RegistryError(
                f"{interface.key} is declared twice with different models: a new shape needs "
                "a new version"
            )
        self._by_key[key] = interface
        return interface

    def extend(self, other: Registry) -> Registry:
        for interface in other:
            self.add(interface)
        return self

    def __iter__(self) -> Iterator[AnyInterface]:
        return iter(sorted(self._by_key.values(), key=lambda i: (i.name, i.version)))

    def __len__(self) -> int:
        return len(self._by_key)

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._by_key})

    def versions(self, name: str) -> list[AnyInterface]:
        found = [i for (n, _), i in self._by_key.items() if n == name]
        return sorted(found, key=lambda i: i.version)

    def get(self, name: str, version: str | Version | None = None) -> AnyInterface:
        """The interface ``name`` at ``version``, or its newest version."""
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise UnknownInterfaceError(f"unknown interface {name!r}; known: {known}")
        if version is None:
            return versions[-1]
        wanted = Version.parse(version)
        for interface in versions:
            if interface.version == wanted:
                return interface
        have = ", ".join(str(i.version) for i in versions)
        raise UnknownInterfaceError(f"{name} has no version {wanted}; registered: {have}")

    def resolve(self, reference: str) -> AnyInterface:
        """Look up ``name`` or ``name@version``."""
        name, _, version = reference.partition("@")
        return self.get(name, version or None)


def schema_path(directory: Path, name: str, version: Version | str) -> Path:
    return directory / name / f"{version}.json"


def render(document: dict[str, Any]) -> str:
    """The canonical text of a schema file (stable across runs)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(registry: Registry, directory: Path) -> list[Path]:
    """Write every interface version's schema; returns the files written or rewritten."""
    written: list[Path] = []
    for interface in registry:
        path = schema_path(directory, interface.name, interface.version)
        text = render(interface.json_schema())
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def load_schema(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read schema file {path}: {exc}") from exc
    if not isinstance(document, dict) or "message" not in document:
        raise RegistryError(f"{path} is not an agentbus interface schema (no 'message' key)")
    return document


def published(directory: Path, name: str) -> dict[Version, dict[str, Any]]:
    """Every published version of ``name`` found under ``directory``."""
    folder = directory / name
    found: dict[Version, dict[str, Any]] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            found[Version.parse(path.stem)] = load_schema(path)
    return found


def compare_documents(old: dict[str, Any], new: dict[str, Any]) -> CompatibilityReport:
    """Compare two exported interface documents (message and, if any, reply)."""
    findings: list[Finding] = [
        _prefixed(f, "/message") for f in compare_schemas(old["message"], new["message"]).findings
    ]
    old_reply, new_reply = old.get("reply"), new.get("reply")
    if old_reply is not None and new_reply is not None:
        reverse = compare_schemas(new_reply, old_reply)
        findings += [
            _prefixed(f, "/reply") for f in reverse.findings if f.kind not in _TOLERATED_ON_REPLY
        ]
    elif old_reply != new_reply:
        findings.append(
            Finding(
                "/reply", "kind_changed", Compatibility.BREAKING, "the reply was added or removed"
            )
        )
    if old.get("kind") != new.get("kind"):
        findings.append(
            Finding(
                "/kind",
                "kind_changed",
                Compatibility.BREAKING,
                f"interface kind changed from {old.get('kind')} to {new.get('kind')}",
            )
        )
    worst = max((f.compatibility for f in findings), key=_rank, default=Compatibility.NONE)
    return CompatibilityReport(worst, tuple(findings))


def _rank(compatibility: Compatibility) -> int:
    return [Compatibility.NONE, Compatibility.COMPATIBLE, Compatibility.BREAKING].index(
        compatibility
    )


def _prefixed(finding: Finding, prefix: str) -> Finding:
    return Finding(prefix + finding.path, finding.kind, finding.compatibility, finding.message)


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason ``agentbus interfaces check`` fails."""

    interface: str
    message: str
    report: CompatibilityReport | None = None


def check_registry(registry: Registry, directory: Path) -> list[Problem]:
    """What is wrong between the registry in code and the published schema files."""
    problems: list[Problem] = []
    for interface in registry:
        versions = published(directory, interface.name)
        document = interface.json_schema()
        if interface.version in versions:
            report = compare_documents(versions[interface.version], document)
            if report.findings:
                problems.append(
                    Problem(
                        interface.key,
                        f"{interface.key} changed after it was published; declare the new shape "
                        f"as a new version ({report.required_bump()} bump needed)",
                        report,
                    )
                )
            continue
        older = [v for v in versions if v < interface.version]
        if not older:
            continue  # a brand-new interface (or line): nothing to be compatible with
        base = max(older)
        report = compare_documents(versions[base], document)
        problems.extend(
            Problem(interface.key, problem, report)
            for problem in check_version_bump(str(base), str(interface.version), report)
        )
    return problems
