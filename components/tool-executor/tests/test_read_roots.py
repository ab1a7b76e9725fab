"""Read roots: readable by the reading tools, never written; the most specific root decides."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentbus.tool_executor.declaration import Tool, ToolContext, ToolOutcome
from agentbus.tool_executor.errors import Refused
from agentbus.tool_executor.policy import Policy
from agentbus.tool_executor.sandbox import sandbox
from agentbus.tool_executor.tools import fs, git, shell


async def call(declared: Tool, policy: Policy, **arguments: Any) -> ToolOutcome:
    return await declared.function(declared.parse(arguments), ToolContext("agent", policy))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.txt").write_text("read me\n", encoding="utf-8")
    (folder / "sub" / "deep.txt").write_text("deep read\n", encoding="utf-8")
    return folder


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def state(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


async def test_the_reading_tools_read_a_read_root(ws: Path, docs: Path) -> None:
    policy = Policy(roots=(ws,), read_roots=(docs,), tools=("fs.*",))
    assert (await call(fs.read, policy, path=str(docs / "guide.txt"))).content == "read me\n"
    listed = await call(fs.list_dir, policy, path=str(docs))
    assert "guide.txt" in listed.content
    globbed = await call(fs.glob, policy, pattern="**/*.txt", path=str(docs))
    assert globbed.data["matches"] == ["guide.txt", "sub/deep.txt"]
    grepped = await call(fs.grep, policy, pattern="read", path=str(docs))
    assert "sub/deep.txt:1:deep read" in grepped.content


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        (fs.write, {"path": "guide.txt", "content": "changed"}),
        (fs.write, {"path": "new.txt", "content": "new"}),
        (fs.write, {"path": "made/new.txt", "content": "new", "create_dirs": True}),
        (fs.edit, {"path": "guide.txt", "search": "read", "replace": "write"}),
    ],
    ids=["overwrite", "create", "create-dirs", "edit"],
)
async def test_writes_under_a_read_root_are_refused(
    ws: Path, docs: Path, tool: Tool, arguments: dict[str, Any]
) -> None:
    policy = Policy(roots=(ws,), read_roots=(docs,), tools=("fs.*",))
    before = state(docs)
    arguments = {**arguments, "path": str(docs / arguments["path"])}
    with pytest.raises(Refused, match="read-only root") as refused:
        await call(tool, policy, **arguments)
    assert str(ws) in refused.value.message  # says where writing is allowed
    assert state(docs) == before


async def test_a_read_root_inside_a_writable_root_stays_read_only(ws: Path) -> None:
    inner = ws / "vendor"
    inner.mkdir()
    (inner / "lib.txt").write_text("vendored\n", encoding="utf-8")
    policy = Policy(roots=(ws,), read_roots=(inner,), tools=("fs.*",))
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.write, policy, path="vendor/lib.txt", content="patched")
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.write, policy, path="vendor/x/y.txt", content="new", create_dirs=True)
    assert (inner / "lib.txt").read_text(encoding="utf-8") == "vendored\n"
    assert not (inner / "x").exists()
    await call(fs.write, policy, path="mine.txt", content="mine")  # the rest stays writable
    assert (await call(fs.read, policy, path="vendor/lib.txt")).content == "vendored\n"


async def test_a_writable_root_inside_a_read_root_is_writable(docs: Path) -> None:
    scratch = docs / "scratch"
    scratch.mkdir()
    policy = Policy(roots=(scratch,), read_roots=(docs,), tools=("fs.*",))
    await call(fs.write, policy, path=str(scratch / "notes.txt"), content="ok")
    assert (scratch / "notes.txt").read_text(encoding="utf-8") == "ok"
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.write, policy, path=str(docs / "notes.txt"), content="no")


async def test_a_link_from_a_writable_root_into_a_read_root_is_not_written_through(
    ws: Path, docs: Path
) -> None:
    (ws / "guide-link.txt").symlink_to(docs / "guide.txt")
    (ws / "docs-link").symlink_to(docs, target_is_directory=True)
    policy = Policy(roots=(ws,), read_roots=(docs,), tools=("fs.*",))
    before = state(docs)
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.write, policy, path="guide-link.txt", content="changed")
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.edit, policy, path="guide-link.txt", search="read", replace="x")
    with pytest.raises(Refused, match="read-only root"):
        await call(fs.write, policy, path="docs-link/n/x.txt", content="x", create_dirs=True)
    assert state(docs) == before
    assert (await call(fs.read, policy, path="guide-link.txt")).content == "read me\n"


def test_a_folder_is_not_both_a_root_and_a_read_root(ws: Path) -> None:
    with pytest.raises(ValidationError, match="in roots and in read_roots"):
        Policy(roots=(ws,), read_roots=(ws,))


def test_read_roots_are_resolved_and_absolute(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert Policy(read_roots=(tmp_path / "alias",)).read_roots == (tmp_path / "real",)
    with pytest.raises(ValidationError, match="absolute"):
        Policy(read_roots=(Path("relative"),))


@pytest.fixture
def repo(docs: Path) -> Path:
    folder = docs / "repo"
    folder.mkdir()
    run = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*run, "init", "-q"], check=True)
    (folder / "a.txt").write_text("a\n", encoding="utf-8")
    subprocess.run([*run, "add", "-A"], check=True)
    subprocess.run([*run, "commit", "-q", "-m", "a"], check=True)
    (folder / "a.txt").write_text("b\n", encoding="utf-8")
    return folder


async def test_git_reads_a_repository_in_a_read_root_and_writes_nothing(
    ws: Path, docs: Path, repo: Path
) -> None:
    policy = Policy(roots=(ws,), read_roots=(docs,), tools=("git.*",), path="/usr/bin:/bin")
    before = state(repo)
    status = await call(git.status, policy, repo=str(repo))
    assert {"status": " M", "path": "a.txt"} in status.data["changes"]  # type: ignore[operator]
    assert "+b" in (await call(git.diff, policy, repo=str(repo))).content
    assert state(repo) == before, "git wrote into the read root (an index refresh?)"
    with pytest.raises(Refused, match="read-only root"):
        await call(git.commit, policy, repo=str(repo), message="no")
    assert state(repo) == before


async def test_a_read_root_inside_a_writable_root_is_read_only_in_the_sandbox(ws: Path) -> None:
    if sandbox().bwrap is None:
        pytest.skip(f"needs the bubblewrap sandbox: {sandbox().reason}")
    inner = ws / "vendor"
    inner.mkdir()
    policy = Policy(  # noqa: S604 - a policy field, no shell is started here
        roots=(ws,), read_roots=(inner,), tools=("shell.exec",), commands=("sh",), shell=True
    )
    script = "echo ok > mine.txt && echo no > vendor/theirs.txt"
    done = await call(shell.exec_, policy, argv=["sh", "-c", script])
    assert (ws / "mine.txt").read_text(encoding="utf-8") == "ok\n"
    assert done.exit_code != 0
    assert "Read-only file system" in done.content
    assert not (inner / "theirs.txt").exists()


async def test_a_writable_root_inside_a_read_root_is_writable_in_the_sandbox(docs: Path) -> None:
    if sandbox().bwrap is None:
        pytest.skip(f"needs the bubblewrap sandbox: {sandbox().reason}")
    scratch = docs / "scratch"
    scratch.mkdir()
    policy = Policy(  # noqa: S604 - a policy field, no shell is started here
        roots=(scratch,), read_roots=(docs,), tools=("shell.exec",), commands=("sh",), shell=True
    )
    script = "cat ../guide.txt && echo ok > mine.txt && echo no > ../theirs.txt"
    done = await call(shell.exec_, policy, argv=["sh", "-c", script])
    assert "read me" in done.content  # the read root is there, read-only
    assert (scratch / "mine.txt").read_text(encoding="utf-8") == "ok\n"
    assert "Read-only file system" in done.content
    assert not (docs / "theirs.txt").exists()
