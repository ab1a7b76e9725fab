"""A name that is not UTF-8, shown escaped (``\\xNN``) by fs.list, fs.glob and fs.grep, works
as a path again in fs.read, fs.edit and fs.write; a name that really is spelt that way wins."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import Tool, ToolContext, ToolOutcome
from agentbus.tool_executor.errors import Refused
from agentbus.tool_executor.policy import Policy
from agentbus.tool_executor.tools import fs

FILE = b"bad\xffname.txt"
FOLDER = b"dir\xfe"
INNER = b"in\xfd.txt"


async def call(declared: Tool, policy: Policy, **arguments: Any) -> ToolOutcome:
    result = await declared.function(declared.parse(arguments), ToolContext("agent", policy))
    json.dumps({"content": result.content, "data": result.data})  # what the reply carries
    return result


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    base = os.fsencode(folder)
    put(os.path.join(base, FILE), b"needle\n")
    os.mkdir(os.path.join(base, FOLDER))
    put(os.path.join(base, FOLDER, INNER), b"inner needle\n")
    return folder


def put(path: bytes, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


@pytest.fixture
def policy(ws: Path) -> Policy:
    return Policy(roots=(ws,), tools=("fs.*",))


def raw(ws: Path, *names: bytes) -> bytes:
    with open(os.path.join(os.fsencode(ws), *names), "rb") as file:
        return file.read()


async def test_a_listed_name_reads_edits_and_writes(ws: Path, policy: Policy) -> None:
    listed = await call(fs.list_dir, policy, path=".")
    entries = listed.data["entries"]
    assert isinstance(entries, list)
    names = [e["name"] for e in entries if isinstance(e, dict)]
    assert names == ["bad\\xffname.txt", "dir\\xfe"]
    shown = str(names[0])

    read = await call(fs.read, policy, path=shown)
    assert read.content == "needle\n"
    assert read.data["path"] == str(ws / "bad\\xffname.txt")  # shown escaped, not failing

    await call(fs.edit, policy, path=shown, search="needle", replace="found")
    assert raw(ws, FILE) == b"found\n"
    await call(fs.write, policy, path=shown, content="written\n")
    assert raw(ws, FILE) == b"written\n"
    assert not (ws / "bad\\xffname.txt").exists()  # no second file spelt with a backslash


async def test_a_globbed_path_in_an_escaped_folder_works(ws: Path, policy: Policy) -> None:
    globbed = await call(fs.glob, policy, pattern="**/*.txt")
    assert globbed.data["matches"] == ["bad\\xffname.txt", "dir\\xfe/in\\xfd.txt"]
    read = await call(fs.read, policy, path="dir\\xfe/in\\xfd.txt")
    assert read.content == "inner needle\n"
    await call(fs.write, policy, path="dir\\xfe/new.txt", content="new\n")
    assert raw(ws, FOLDER, b"new.txt") == b"new\n"
    listed = await call(fs.list_dir, policy, path="dir\\xfe")
    assert "new.txt" in listed.content


async def test_a_grepped_path_works(ws: Path, policy: Policy) -> None:
    grepped = await call(fs.grep, policy, pattern="needle")
    found = sorted(line.split(":", 1)[0] for line in grepped.content.splitlines())
    assert found == ["bad\\xffname.txt", "dir\\xfe/in\\xfd.txt"]
    assert (await call(fs.grep, policy, pattern="inner", path=found[1])).content.endswith(
        ":1:inner needle"
    )


async def test_a_name_spelt_with_a_backslash_wins(ws: Path, policy: Policy) -> None:
    (ws / "bad\\xffname.txt").write_text("literal\n", encoding="utf-8")
    assert (await call(fs.read, policy, path="bad\\xffname.txt")).content == "literal\n"
    assert raw(ws, FILE) == b"needle\n"


async def test_an_escaped_path_outside_the_roots_is_refused(ws: Path, policy: Policy) -> None:
    outside = os.path.join(os.fsencode(ws.parent), b"out\xffside")
    os.mkdir(outside)
    put(os.path.join(outside, b"secret"), b"secret\n")
    with pytest.raises(Refused, match="outside the workspace roots"):
        await call(fs.read, policy, path="../out\\xffside/secret")
    with pytest.raises(Refused, match="outside the workspace roots"):
        await call(fs.write, policy, path="../out\\xffside/new", content="x")
    assert os.listdir(outside) == [b"secret"]


def test_only_bytes_that_cannot_be_utf8_are_unescaped() -> None:
    assert paths.unescaped("a\\xffb\\x41c") == "a\udcffb\\x41c"  # \\x41 is plain "A": kept
    assert paths.shown_name(paths.unescaped("x\\xfe\\x80")) == "x\\xfe\\x80"
