"""``dependency.updated``: bump the constraint, re-lock, test both versions, commit.

Only the component's ``pyproject.toml`` constraint is rewritten, keeping its
shape: ``==old`` becomes ``==new``, a lower bound (``>=``, ``~=``) moves to the
new version, an upper bound the new version breaks is lifted to the next major.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from agentbus.interfaces.catalog.maintenance import DependencyUpdated
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.flows.change import ChangeReport, attempt_change
from agentbus.maintainer.rules import Decision

_STRING_RE = re.compile(r'"([^"\n]+)"')


def bumped_specifier(specifier: SpecifierSet, new: str) -> SpecifierSet:
    """The same kind of constraint, admitting ``new``."""
    target = Version(new)
    parts: list[str] = []
    for spec in specifier:
        if spec.operator in ("==", "===", ">=", "~=", ">"):
            operator = ">=" if spec.operator == ">" else spec.operator
            parts.append(f"{operator}{new}")
        elif spec.operator in ("<", "<=") and not Specifier(str(spec)).contains(target):
            parts.append(f"<{target.major + 1}")
        elif spec.operator == "!=" and Specifier(str(spec)).contains(target) is False:
            continue
        else:
            parts.append(str(spec))
    if not parts:
        parts.append(f">={new}")
    return SpecifierSet(",".join(parts))


def bump_constraint(pyproject: Path, package: str, new: str) -> str:
    """Rewrite ``package``'s requirement in ``pyproject``; return the new requirement text."""
    text = pyproject.read_text(encoding="utf-8")
    wanted = canonicalize_name(package)
    for match in _STRING_RE.finditer(text):
        try:
            requirement = Requirement(match.group(1))
        except ValueError:
            continue
        if canonicalize_name(requirement.name) != wanted:
            continue
        requirement.specifier = bumped_specifier(requirement.specifier, new)
        replacement = str(requirement)
        pyproject.write_text(
            text[: match.start(1)] + replacement + text[match.end(1) :], encoding="utf-8"
        )
        return replacement
    raise FlowError(f"{pyproject} declares no requirement on {package}")


async def update_dependency(
    component: ComponentContext, event: DependencyUpdated, decision: Decision
) -> ChangeReport:
    """Bump ``event.package`` to ``event.to_version`` in a worktree and test both versions."""
    if not (component.path / "pyproject.toml").is_file():
        raise FlowError(f"{component.name} has no pyproject.toml to bump {event.package} in")

    async def edit(component_dir: Path) -> list[Path]:
        pyproject = component_dir / "pyproject.toml"
        requirement = bump_constraint(pyproject, event.package, event.to_version)
        changed = [pyproject]
        context_path = component_dir / "context" / "context.json"
        document = json.loads(context_path.read_text(encoding="utf-8"))
        for dependency in document["dependencies"]:
            if canonicalize_name(dependency["package"]) == canonicalize_name(event.package):
                dependency["constraint"] = str(Requirement(requirement).specifier)
                context_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
                changed.append(context_path)
        return changed

    return await attempt_change(
        component,
        title=(
            f"{component.name}: update {event.package} {event.from_version} -> {event.to_version}"
        ),
        branch_slug=f"{event.package}-{event.to_version}",
        edit=edit,
        decision=decision,
        relock=event.package,
    )
