"""A member of a uv workspace (no requirements.lock of its own): the constraint is bumped in
the member, the workspace's uv.lock is re-locked for that package only, and the tests run on
the versions ``uv export`` pins, old and new."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from agentbus.interfaces.catalog.maintenance import DependencyUpdated
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.flows.dependency import update_dependency
from agentbus.maintainer.rules import Decision
from agentbus.maintainer.testing import sample_repository
from agentbus.maintainer.testmatrix import command, lock_file, workspace_root

ROOT_PYPROJECT = """[project]
name = "workspace"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["sample-greeter"]

[tool.uv.workspace]
members = ["sample-greeter"]

[tool.uv.sources]
sample-greeter = { workspace = true }
"""
ACT = Decision("act", "patch update", "patch or minor update of a dependency")


def workspace(tmp_path: Path) -> Path:
    """The sample as a workspace member, locked by the workspace's uv.lock, test_command
    ``uv run pytest``."""
    component = sample_repository(tmp_path)
    root = component.parent
    (component / "requirements.lock").unlink()
    config = component / "context" / "agent-config.json"
    config.write_text(
        config.read_text().replace(
            '"python",\n    "-m",\n    "pytest"', '"uv",\n    "run",\n    "pytest"'
        )
    )
    (root / "pyproject.toml").write_text(ROOT_PYPROJECT)
    with git.Repo(root) as repo:
        repo.git.execute(["uv", "lock", "--quiet"])
        repo.git.add(A=True)
        repo.index.commit("a workspace")
    return component


def update(to: str) -> DependencyUpdated:
    return DependencyUpdated(package="greetlib", from_version="1.0.0", to_version=to)


async def test_a_workspace_member_is_relocked_and_tested(
    tmp_path: Path, offline_uv: dict[str, str]
) -> None:
    component = workspace(tmp_path)
    context = ComponentContext.load(component)
    assert context.config["test_command"][:3] == ["uv", "run", "pytest"]
    assert lock_file(component) == component.parent / "uv.lock"

    report = await update_dependency(context, update("1.0.1"), ACT)
    assert report.ok, report.matrix.as_text()
    assert "uv.lock" in report.changed
    with git.Repo(component.parent) as repo:
        locked = repo.git.show(f"{report.commit}:uv.lock")
    assert 'name = "greetlib"\nversion = "1.0.1"' in locked

    broken = await update_dependency(context, update("1.0.2"), ACT)
    assert not broken.ok
    assert len(broken.matrix.broken) == 3


def test_pins_are_looked_for_inside_the_repository_only(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("")  # outside the repository: not ours
    component = sample_repository(tmp_path / "repo")
    (component / "requirements.lock").unlink()
    assert workspace_root(component) is None
    with pytest.raises(FlowError, match="pins nothing"):
        lock_file(component)


def test_uv_run_becomes_this_interpreter() -> None:
    argv = command(["uv", "run", "pytest", "-q", "tests"])
    assert argv[1:] == ["-m", "pytest", "-q", "tests"]
    assert command(["python", "-m", "pytest"])[1:] == ["-m", "pytest"]
