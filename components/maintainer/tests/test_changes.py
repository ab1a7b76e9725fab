"""The pieces of a change: constraint bumps, interface pins, the test matrix, git worktrees."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest
from packaging.specifiers import SpecifierSet

from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.flows.change import bump_component_version, bump_patch
from agentbus.maintainer.flows.dependency import bump_constraint, bumped_specifier
from agentbus.maintainer.flows.interface_change import move_pin, moved_pin
from agentbus.maintainer.gitwork import checkout, integrate
from agentbus.maintainer.testing import sample_repository
from agentbus.maintainer.testmatrix import Matrix, TestRun, parse_junit


@pytest.mark.parametrize(
    ("before", "new", "after"),
    [
        ("==1.0.0", "1.0.1", "==1.0.1"),
        (">=1.0,<2", "1.4.0", "<2,>=1.4.0"),
        (">=1.0,<2", "2.1.0", "<3,>=2.1.0"),
        ("~=1.0", "1.2", "~=1.2"),
        ("", "3.0.0", ">=3.0.0"),
        (">=1,!=1.0.3", "1.0.3", ">=1.0.3"),
    ],
)
def test_bumped_specifier(before: str, new: str, after: str) -> None:
    assert bumped_specifier(SpecifierSet(before), new) == SpecifierSet(after)


def test_bump_constraint_rewrites_only_that_requirement(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\nversion = "1.0.0"\n'
        "dependencies = [\n    \"greetlib[fast]==1.0.0; python_version >= '3.11'\",\n"
        '    "httpx>=0.27",\n]\n'
    )
    assert bump_constraint(pyproject, "GreetLib", "1.0.1").startswith("greetlib[fast]==1.0.1")
    text = pyproject.read_text()
    assert 'greetlib[fast]==1.0.1; python_version >= "3.11"' in text
    assert '"httpx>=0.27"' in text
    with pytest.raises(FlowError, match="no requirement on numpy"):
        bump_constraint(pyproject, "numpy", "2.0.0")


@pytest.mark.parametrize(
    ("pin", "new", "moved"),
    [
        ("1.0.0", "1.1.0", "1.1.0"),
        (">=1.0.0,<2.0.0", "1.2.0", ">=1.2.0,<2.0.0"),
        ("<2.0.0", "1.2.0", ">=1.2.0,<2.0.0"),
    ],
)
def test_moved_pin(pin: str, new: str, moved: str) -> None:
    assert moved_pin(pin, new) == moved


def test_move_pin_and_bump_version(tmp_path: Path) -> None:
    component = sample_repository(tmp_path / "repo")
    assert move_pin(component, "sample.greet", "1.1.0") is True
    assert move_pin(component, "unknown.interface", "1.1.0") is False
    changed = bump_component_version(component, bump_patch("1.0.0"))
    assert {p.name for p in changed} == {"context.json", "pyproject.toml"}
    context = json.loads((component / "context" / "context.json").read_text())
    assert context["version"] == "1.0.1"
    assert context["interfaces"]["provides"] == [{"name": "sample.greet", "version": "1.1.0"}]
    assert 'version = "1.0.1"' in (component / "pyproject.toml").read_text()


def run(outcomes: dict[str, str], label: str = "x") -> TestRun:
    return TestRun(label, outcomes, 0, "")


def test_the_matrix_requires_pass_to_pass() -> None:
    old = run({"a": "passed", "b": "passed", "c": "failed", "d": "skipped"})
    good = Matrix.compare(old, run({"a": "passed", "b": "passed", "c": "passed", "e": "passed"}))
    assert good.ok
    assert good.fail_to_pass == ["c"]
    assert good.pass_to_pass == ["a", "b"]
    bad = Matrix.compare(old, run({"a": "passed", "c": "passed"}))  # b vanished
    assert not bad.ok
    assert bad.broken == ["b"]
    assert "FAILED" in bad.as_text()
    assert bad.as_json()["tests"]["b"] == {"old": "passed", "new": "absent"}
    assert not Matrix.compare(run({}), run({})).ok  # no test at all proves nothing


def test_parse_junit(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="test_ok"/>'
        '<testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_a" name="test_err"><error message="x"/></testcase>'
        '<testcase classname="tests.test_a" name="test_skip"><skipped message="x"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert parse_junit(report) == {
        "tests.test_a::test_ok": "passed",
        "tests.test_a::test_bad": "failed",
        "tests.test_a::test_err": "error",
        "tests.test_a::test_skip": "skipped",
    }


def test_a_checkout_is_a_separate_worktree_on_a_new_branch(tmp_path: Path) -> None:
    component = sample_repository(tmp_path / "repo")
    with git.Repo(component.parent) as repo:
        base = repo.head.commit.hexsha
        with checkout(component, "sample-greeter", "greetlib 1.0.1") as work:
            assert work.root != component.parent
            assert work.branch == f"maintainer/sample-greeter/greetlib-1.0.1-{base[:8]}"
            (work.component_dir / "NOTES.md").write_text("changed in the worktree\n")
            sha = work.commit([work.component_dir / "NOTES.md"], "notes")
            assert not (component / "NOTES.md").exists()  # the checkout is untouched
        assert not work.root.exists()
        assert repo.commit(sha).parents[0].hexsha == base
        with checkout(component, "sample-greeter", "greetlib 1.0.1") as again:
            assert again.branch.endswith("-2")  # the first branch is kept
            (again.component_dir / "OTHER.md").write_text("another change\n")
            again.commit([again.component_dir / "OTHER.md"], "other")
        assert integrate(component, work.branch) is True
        assert (component / "NOTES.md").exists()
        assert integrate(component, again.branch) is False  # not a fast-forward any more
