"""The path every change takes: worktree, test old, edit, (re)lock, test new, compare, commit.

The component's version is bumped only when the PASS_TO_PASS check holds; the
commit is made either way, so a failed attempt stays inspectable on its branch
(the escalation names it). A commit message carries the decision and the matrix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentbus.maintainer.context import CONTEXT_FILE, ComponentContext
from agentbus.maintainer.gitwork import checkout
from agentbus.maintainer.rules import Decision
from agentbus.maintainer.testmatrix import Matrix, lock, run_tests

Edit = Callable[[Path], Awaitable[list[Path]]]
"""Changes files under the worktree's component folder; returns the files it changed."""

_PROJECT_VERSION_RE = re.compile(r'^(version\s*=\s*")([^"]+)(")', re.M)


def bump_patch(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def bump_component_version(component_dir: Path, new_version: str) -> list[Path]:
    """Set the version in context/context.json and, when present, [project] of pyproject."""
    changed = []
    context_path = component_dir / "context" / CONTEXT_FILE
    document = json.loads(context_path.read_text(encoding="utf-8"))
    document["version"] = new_version
    write_json(context_path, document)
    changed.append(context_path)
    pyproject = component_dir / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8")
        updated, count = _PROJECT_VERSION_RE.subn(rf"\g<1>{new_version}\g<3>", text, count=1)
        if count:
            pyproject.write_text(updated, encoding="utf-8")
            changed.append(pyproject)
    return changed


@dataclass
class ChangeReport:
    """What a change attempt found: the branch, its commit, the test matrix."""

    title: str
    branch: str
    base_commit: str
    commit: str
    old_version: str
    new_version: str
    matrix: Matrix
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matrix.ok

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "branch": self.branch,
            "base_commit": self.base_commit,
            "commit": self.commit,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "changed": self.changed,
            "matrix": self.matrix.as_json(),
        }


def commit_message(title: str, decision: Decision, matrix: Matrix, version: str) -> str:
    return (
        f"{title}\n\n"
        f"Decision: {decision.action} (rule: {decision.rule})\n"
        f"Reason: {decision.reason}\n"
        f"Component version: {version}\n\n"
        f"Tests, old vs new version:\n{matrix.as_text()}\n"
    )


async def attempt_change(
    component: ComponentContext,
    *,
    title: str,
    branch_slug: str,
    edit: Edit,
    decision: Decision,
    relock: str | None,
) -> ChangeReport:
    """Make the change in a worktree and test it against the old version; ``relock`` names
    the package whose pins must be re-resolved after the edit."""
    test_command = list(component.config["test_command"])
    with checkout(component.path, component.name, branch_slug) as work:
        old = await run_tests(work.component_dir, test_command, "old")
        changed = await edit(work.component_dir)
        if relock is not None:
            changed.append(await lock(work.component_dir, relock))
        new = await run_tests(work.component_dir, test_command, "new")
        matrix = Matrix.compare(old, new)
        new_version = component.version
        if matrix.ok:
            new_version = bump_patch(component.version)
            changed += bump_component_version(work.component_dir, new_version)
        unique = sorted(set(changed))
        sha = work.commit(unique, commit_message(title, decision, matrix, new_version))
        return ChangeReport(
            title=title,
            branch=work.branch,
            base_commit=work.base_commit,
            commit=sha,
            old_version=component.version,
            new_version=new_version,
            matrix=matrix,
            changed=[str(p.relative_to(work.root)) for p in unique],
        )
