"""Each built-in tool doing its job through the bus, plus listing and least privilege."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import FakeWeb, Workspace

from agentbus.framework import RemoteError
from agentbus.interfaces.catalog.tools import (
    TOOLS_EXECUTE,
    TOOLS_LIST,
    Completed,
    ExecuteRequest,
    ListToolsRequest,
)
from agentbus.tool_executor.tools import BUILTIN


def agent_policy(workspace: Workspace, **extra: Any) -> dict[str, Any]:
    return {
        "roots": [str(workspace.ws)],
        "tools": ["*"],
        "commands": ["echo", "sh", "false"],
        "medium": "run",
        "timeout": 20.0,
        **extra,
    }


@pytest.fixture
async def call(workspace: Workspace, start_executor: Any, bus_as: Any, web: FakeWeb) -> Any:
    await start_executor(
        {"policy": {"agent": agent_policy(workspace, hosts=[f"127.0.0.1:{web.port}"])}}
    )
    bus = await bus_as("agent")

    async def run(tool: str, **arguments: Any) -> Completed:
        reply = await bus.request(
            TOOLS_EXECUTE,
            ExecuteRequest(tool=tool, arguments=arguments, caller="agent"),
            timeout=30,
        )
        assert isinstance(reply.result, Completed)
        return reply.result

    return run


def test_every_builtin_tool_declares_a_description_and_an_object_schema() -> None:
    names = {t.name for t in BUILTIN}
    assert names == {
        "fs.read", "fs.write", "fs.edit", "fs.list", "fs.glob", "fs.grep", "shell.exec",
        "http.fetch", "git.status", "git.diff", "git.commit", "python.test",
    }  # fmt: skip
    for declared in BUILTIN:
        schema = declared.input_schema()
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert len(declared.description) > 20


async def test_fs_read_returns_line_ranges(call: Any) -> None:
    result = await call("fs.read", path="file.txt", start_line=2, end_line=3)
    assert result.content == "two\nthree\n"
    assert result.data["total_lines"] == 3


async def test_fs_write_then_edit_exact_and_unique(call: Any, workspace: Workspace) -> None:
    await call("fs.write", path="new/a.py", content="x = 1\ny = 1\n", create_dirs=True)
    result = await call("fs.edit", path="new/a.py", search="y = 1", replace="y = 2")
    assert result.data["line"] == 2
    assert (workspace.ws / "new" / "a.py").read_text() == "x = 1\ny = 2\n"
    with pytest.raises(RemoteError) as absent:
        await call("fs.edit", path="new/a.py", search="z = 1", replace="")
    assert absent.value.code == "invalid"
    assert "does not occur" in absent.value.reply.message
    with pytest.raises(RemoteError) as twice:
        await call("fs.edit", path="new/a.py", search=" = ", replace="=")
    assert "occurs 2 times" in twice.value.reply.message


async def test_fs_list_glob_grep(call: Any, workspace: Workspace) -> None:
    (workspace.ws / "sub" / "b.py").write_text("import os\n", encoding="utf-8")
    listing = await call("fs.list", path=".")
    kinds = {e["name"]: e["kind"] for e in listing.data["entries"]}
    assert kinds == {"file.txt": "file", "sub": "dir"}
    found = await call("fs.glob", pattern="**/*.py")
    assert found.data["matches"] == ["sub/b.py"]
    grep = await call("fs.grep", pattern="^import", glob="*.py")
    assert grep.content == "sub/b.py:1:import os"


async def test_shell_exec_argv_exit_code_and_string_refused(call: Any) -> None:
    result = await call("shell.exec", argv=["echo", "hello", "world"])
    assert (result.content, result.exit_code, result.timed_out) == ("hello world\n", 0, False)
    failed = await call("shell.exec", argv=["false"])
    assert failed.exit_code == 1
    with pytest.raises(RemoteError) as refused:
        await call("shell.exec", command="echo hi")
    assert refused.value.code == "forbidden"


async def test_http_fetch_follows_allowed_redirects(call: Any, web: FakeWeb) -> None:
    web.routes["/start"] = (302, {"Location": "/final"}, b"")
    web.routes["/final"] = (200, {"Content-Type": "text/plain"}, b"arrived")
    result = await call("http.fetch", url=f"{web.base}/start")
    assert result.content == "arrived"
    assert result.data["status"] == 200
    assert result.data["redirects"] == [f"{web.base}/start"]
    assert web.hits == ["/start", "/final"]


async def test_a_pattern_that_backtracks_without_end_times_out_and_blocks_nobody(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    (workspace.ws / "trap.txt").write_text("a" * 64 + "b\n", encoding="utf-8")
    await start_executor({"policy": {"agent": agent_policy(workspace, timeout=2.0)}})
    bus = await bus_as("agent")

    def execute(tool: str, **arguments: Any) -> Any:
        request = ExecuteRequest(tool=tool, arguments=arguments, caller="agent")
        return bus.request(TOOLS_EXECUTE, request, timeout=30)

    grep = asyncio.ensure_future(execute("fs.grep", pattern="(a|aa)+$", glob="trap.txt"))
    await asyncio.sleep(0.1)  # the grep has started
    read = await execute("fs.read", path="file.txt")

    assert not grep.done(), "the executor answered another call while the grep ran"
    assert isinstance(read.result, Completed)
    with pytest.raises(RemoteError) as timed_out:
        await grep
    assert timed_out.value.code == "timeout"
    assert "trap.txt:1" in str(timed_out.value)
    assert "simplify the pattern" in str(timed_out.value)


async def test_http_fetch_connects_to_the_address_it_checked_not_a_rebound_one(
    workspace: Workspace,
    start_executor: Any,
    bus_as: Any,
    internal: FakeWeb,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = FakeWeb("127.0.0.2")
    answers: list[tuple[str, int]] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        """rebind.test: first the allowed address, then the internal one."""
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        answer = ("127.0.0.2", allowed.port) if not answers else ("127.0.0.1", internal.port)
        answers.append(answer)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", answer)]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    hosts = [f"rebind.test:{allowed.port}", f"127.0.0.2:{allowed.port}"]
    await start_executor({"policy": {"agent": agent_policy(workspace, hosts=hosts)}})
    bus = await bus_as("agent")
    try:
        reply = await bus.request(
            TOOLS_EXECUTE,
            ExecuteRequest(
                tool="http.fetch",
                arguments={"url": f"http://rebind.test:{allowed.port}/page"},
                caller="agent",
            ),
            timeout=30,
        )
    finally:
        allowed.close()

    assert isinstance(reply.result, Completed)
    assert reply.result.content == "hello from fake"
    assert allowed.hits == ["/page"]
    assert allowed.host_headers == [f"rebind.test:{allowed.port}"]
    assert internal.hits == [], "the second DNS answer was never used"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


async def test_git_status_diff_commit(call: Any, workspace: Workspace) -> None:
    repo = workspace.ws / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    status = await call("git.status", repo="repo")
    assert {"status": "??", "path": "a.txt"} in status.data["changes"]
    commit = await call("git.commit", repo="repo", message="first")
    assert len(commit.data["sha"]) == 40
    (repo / "a.txt").write_text("b\n", encoding="utf-8")
    diff = await call("git.diff", repo="repo")
    assert "-a\n+b" in diff.content
    assert git(repo, "log", "--format=%s|%an") == "first|agentbus tool executor"


async def test_python_test_reports_each_test(call: Any, workspace: Workspace) -> None:
    project = workspace.ws / "proj"
    project.mkdir()
    (project / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "def test_bad():\n    assert 1 == 2\n"
        "@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n",
        encoding="utf-8",
    )
    result = await call("python.test", path="proj")
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in result.data["tests"]}
    assert outcomes == {"test_ok": "passed", "test_bad": "failed", "test_later": "skipped"}
    assert result.exit_code == 1
    assert result.data["counts"] == {"passed": 1, "failed": 1, "skipped": 1}


async def test_list_shows_only_allowed_tools_with_raised_risk(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    policy = agent_policy(workspace, tools=["fs.*", "git.status"], risk={"fs.read": "high"})
    await start_executor({"policy": {"agent": policy}})
    bus = await bus_as("agent")
    reply = await bus.request(TOOLS_LIST, ListToolsRequest(caller="agent"))
    specs = {t.name: t for t in reply.tools}
    assert set(specs) == {"fs.read", "fs.write", "fs.edit", "fs.list", "fs.glob", "fs.grep",
                          "git.status"}  # fmt: skip
    assert specs["fs.read"].risk == "high"
    assert specs["fs.read"].input_schema["properties"]["path"]["type"] == "string"


async def test_unknown_callers_get_nothing(
    workspace: Workspace, start_executor: Any, bus_as: Any
) -> None:
    await start_executor({"policy": {"agent": agent_policy(workspace)}})
    stranger = await bus_as("stranger")
    assert (await stranger.request(TOOLS_LIST, ListToolsRequest(caller="stranger"))).tools == []
    with pytest.raises(RemoteError) as refused:
        await stranger.request(
            TOOLS_EXECUTE,
            ExecuteRequest(tool="fs.read", arguments={"path": "x"}, caller="stranger"),
        )
    assert refused.value.code == "forbidden"
