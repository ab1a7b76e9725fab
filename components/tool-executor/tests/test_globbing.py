"""fs.glob's matcher finds what pathlib's glob finds, without its backtracking, and only
enters folders the pattern can reach."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from agentbus.tool_executor.declaration import ToolContext
from agentbus.tool_executor.globbing import Pattern
from agentbus.tool_executor.policy import Policy
from agentbus.tool_executor.tools import fs

TREE = (
    "a/b/c/d.txt",
    "a/b/c.txt",
    "a/x.py",
    "a/.hidden/h.py",
    ".top.py",
    "src/pkg/mod.py",
    "src/pkg/tests/test_mod.py",
    "src/tests/test_top.py",
    "b/a/b/c.txt",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    return tmp_path


def walk_matches(base: Path, pattern: str) -> list[str]:
    """What the Pattern matches, walking every folder (no pruning)."""
    compiled = Pattern(pattern)
    found: list[str] = []
    states = {PurePosixPath("."): compiled.start()}
    for top, folders, files in os.walk(base):
        here = states[PurePosixPath(os.path.relpath(top, base))]
        for name, folder in [(f, True) for f in folders] + [(f, False) for f in files]:
            relative = PurePosixPath(os.path.relpath(top, base)) / name
            after = compiled.step(here, name, folder=folder)
            if folder:
                states[relative] = after
            if compiled.matches(after, folder=folder):
                found.append(str(relative))
    return sorted(found)


def pathlib_matches(base: Path, pattern: str) -> list[str]:
    """What ``Path.glob`` finds, but the folder searched itself (``**`` yields it)."""
    return sorted(str(m.relative_to(base)) for m in base.glob(pattern) if m != base)


PATTERNS = [
    "*",
    "*/",
    "**/*",
    "**/*.py",
    "**/**/**/*.py",
    "a/**/c.txt",
    "**/b/c.txt",
    "**/b/**/c.txt",
    "a/**",
    "src/*/test_*.py",
    "[ab]/*/c*",
    "**/.hidden/*",
    "*.py",
    "?/x.py",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_matcher_finds_what_pathlib_finds(tree: Path, pattern: str) -> None:
    assert walk_matches(tree, pattern) == pathlib_matches(tree, pattern)


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_fs_glob_finds_what_pathlib_finds(tree: Path, pattern: str) -> None:
    policy = Policy(roots=(tree,), tools=("fs.glob",))
    arguments = fs.glob.parse({"pattern": pattern})
    result = await fs.glob.function(arguments, ToolContext("agent", policy))
    assert result.data["matches"] == pathlib_matches(tree, pattern)


def test_stacked_stars_keep_one_state_per_part() -> None:
    """``**/**/**/x`` is at no more places than it has parts, whatever the depth."""
    pattern = Pattern("**/" * 30 + "x")
    states = pattern.start()
    for depth in range(200):
        states = pattern.step(states, f"d{depth}", folder=True)
        assert len(states) <= 31
    assert pattern.matches(pattern.step(states, "x", folder=False), folder=False)


def test_a_folder_the_pattern_cannot_reach_is_not_entered() -> None:
    pattern = Pattern("src/*/test_*.py")
    assert not pattern.descend(pattern.step(pattern.start(), "docs", folder=True))
    inside = pattern.step(pattern.step(pattern.start(), "src", folder=True), "pkg", folder=True)
    assert pattern.descend(inside)
    assert not pattern.descend(pattern.step(inside, "deeper", folder=True))


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="names nothing"):
        Pattern("./.")
