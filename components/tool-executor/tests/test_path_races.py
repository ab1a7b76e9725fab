"""A folder swapped for a link in a tight loop never leads the fs tools outside the roots.

A second process exchanges ``ws/d`` (a real folder) and ``ws/link`` (a link to
``outside/canary``) with ``renameat2(RENAME_EXCHANGE)`` as fast as it can, while
the real tool functions read, write, create folders, edit, list, glob and grep
under ``d``. The check of a path (``realpath``) and its open are never atomic, so
on the old code (realpath, then ``open(O_NOFOLLOW)``, which guards only the last
name) 9 to 252 of the 1800 calls of a run showed what ``canary`` holds, and every run
wrote there (new files and folders, an edit). Opened beneath the root
(``openat2`` or the ``O_NOFOLLOW`` walk), a call either works inside or fails,
and ``outside`` — a secret file and the canary folder — is never read or changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from race_helpers import Swapper

from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import Tool, ToolContext
from agentbus.tool_executor.errors import ToolError
from agentbus.tool_executor.policy import Policy
from agentbus.tool_executor.tools import fs

SECRET = "RACE-SECRET-5e1f0c"
MARKER = "outside-only-7b2d"
"""A name only the canary folder holds: seeing it in a listing means the walk went out."""
ROUNDS = 150


class Layout:
    """``ws`` (the root) with ``d`` and ``link``; ``outside`` with the secret and the canary."""

    def __init__(self, base: Path) -> None:
        self.ws = base / "ws"
        self.outside = base / "outside"
        self.canary = self.outside / "canary"
        (self.ws / "d" / "sub").mkdir(parents=True)
        (self.ws / "d" / "file.txt").write_text("one\n", encoding="utf-8")
        (self.ws / "d" / "sub" / "inner.txt").write_text("inner\n", encoding="utf-8")
        (self.canary / "sub").mkdir(parents=True)
        (self.outside / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
        # The same names as d, so a call that lands here works and shows it.
        (self.canary / "file.txt").write_text("one\n" + SECRET + "\n", encoding="utf-8")
        (self.canary / "sub" / "inner.txt").write_text(SECRET + "\n", encoding="utf-8")
        (self.canary / MARKER).write_text(SECRET + "\n", encoding="utf-8")
        (self.ws / "link").symlink_to(self.canary, target_is_directory=True)

    def outside_state(self) -> dict[str, tuple[int, bytes]]:
        return {
            str(path): (path.lstat().st_mode, path.read_bytes() if path.is_file() else b"")
            for path in sorted(self.outside.rglob("*"))
        }


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


@pytest.fixture
def swapper(layout: Layout) -> Iterator[Swapper]:
    """The second process, exchanging ``ws/d`` and ``ws/link`` until the test ends."""
    running = Swapper(layout.ws / "d", layout.ws / "link")
    yield running
    running.stop()


OPS: list[tuple[str, Tool, dict[str, Any]]] = [
    ("read", fs.read, {"path": "d/file.txt"}),
    ("read-inner", fs.read, {"path": "d/sub/inner.txt"}),
    ("write", fs.write, {"path": "d/new.txt", "content": "written\n"}),
    ("write-inner", fs.write, {"path": "d/sub/new.txt", "content": "written\n"}),
    ("mkdir", fs.write, {"path": "d/made/deeper/x.txt", "content": "x\n", "create_dirs": True}),
    ("edit", fs.edit, {"path": "d/file.txt", "search": "one\n", "replace": "one\nedited\n"}),
    ("list", fs.list_dir, {"path": "d"}),
    ("list-inner", fs.list_dir, {"path": "d/sub"}),
    ("glob", fs.glob, {"pattern": "**/*", "path": "d"}),
    ("glob-root", fs.glob, {"pattern": "**/*"}),
    ("grep", fs.grep, {"pattern": "one|inner|RACE", "path": "d"}),
    ("grep-root", fs.grep, {"pattern": "one|inner|RACE"}),
]


async def _race(layout: Layout) -> tuple[Counter[str], list[str]]:
    """Every operation ``ROUNDS`` times: how many completed and failed, and each leak seen."""
    policy = Policy(roots=(layout.ws,), tools=("fs.*",), timeout=30.0)
    outcomes: Counter[str] = Counter()
    leaks: list[str] = []
    for _ in range(ROUNDS):
        for name, declared, arguments in OPS:
            ctx = ToolContext("agent", policy)
            try:
                result = await declared.function(declared.parse(arguments), ctx)
            except (ToolError, OSError):
                outcomes["failed"] += 1
                continue
            outcomes["completed"] += 1
            shown = result.content + str(result.data)
            if SECRET in shown or MARKER in shown:
                leaks.append(f"{name} showed what is outside: {shown[:200]!r}")
    return outcomes, leaks


@pytest.mark.parametrize("opening", ["openat2", "walk"])
async def test_a_swapped_folder_never_leads_outside(
    opening: str,
    layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
    swapper: Swapper,
) -> None:
    if opening == "openat2" and not paths.use_openat2:
        pytest.skip("this kernel has no openat2 (or a seccomp filter refuses it)")
    monkeypatch.setattr(paths, "use_openat2", opening == "openat2")
    before = layout.outside_state()

    outcomes, leaks = await _race(layout)

    assert swapper.running(), "the swapper stopped while the calls ran"
    assert leaks == []
    assert layout.outside_state() == before, "something outside the root was written"
    # The swapper really raced the calls: some saw the link (refused), some the folder.
    assert outcomes["completed"] > 0, outcomes
    assert outcomes["failed"] > 0, outcomes
