"""``agentbus tools`` and ``agentbus approvals`` against ``agentbus up``, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import Workspace

from agentbus.framework.testing import child_environment
from agentbus.tool_executor.approvals import approval_id

AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTBUS, *args], env=env, text=True, capture_output=True, timeout=60, check=False
    )


@pytest.fixture
def cluster(workspace: Workspace, tmp_path: Path) -> Iterator[dict[str, str]]:
    policy = tmp_path / "tools.toml"
    policy.write_text(
        f"""
[executor]
relays = ["operator"]

[policy.agent]
roots = ["{workspace.ws}"]
tools = ["fs.*", "shell.exec"]
commands = ["echo"]
medium = "ask"
""",
        encoding="utf-8",
    )
    cluster_file = tmp_path / "agentbus.toml"
    cluster_file.write_text(
        f"""
[nats]
port = 0

[[service]]
name = "tool-executor"
target = "agentbus.tool_executor.service:ToolExecutor"
env = {{ AGENTBUS_TOOLS_POLICY = "{policy}" }}
""",
        encoding="utf-8",
    )
    env = child_environment(keep_key=False)  # `agentbus up` makes the cluster's identities
    env["AGENTBUS_DATA_DIR"] = str(tmp_path / "state")
    with (tmp_path / "up.log").open("w") as log:
        up = subprocess.Popen([*AGENTBUS, "up", "-f", str(cluster_file)], env=env, stdout=log,
                              stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while cli("tools", "list", "--caller", "agent", env=env).returncode != 0:
                if time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "up.log").read_text())
                time.sleep(0.3)
            yield env
        finally:
            up.terminate()
            up.wait(20)


@pytest.mark.slow
def test_tools_and_approvals_from_the_command_line(
    cluster: dict[str, str], workspace: Workspace
) -> None:
    env = cluster
    listed = cli("tools", "list", "--caller", "agent", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {t["name"] for t in json.loads(listed.stdout)} >= {"fs.read", "shell.exec"}

    read = cli("tools", "run", "fs.read", "--args", '{"path": "file.txt"}', "--caller", "agent",
               env=env)  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["content"] == "one\ntwo\nthree\n"

    write = ["tools", "run", "fs.write", "--args", '{"path": "cli.txt", "content": "from cli"}',
             "--caller", "agent", "--idempotency-key", "cli-1"]  # fmt: skip
    asked = cli(*write, env=env)
    assert asked.returncode == 3, asked.stderr
    approval = json.loads(asked.stdout)["approval_id"]
    pending = cli("approvals", "list", "--status", "pending", "--json", env=env)
    assert [a["approval_id"] for a in json.loads(pending.stdout)] == [approval]
    narrow = cli("approvals", "list", env={**env, "COLUMNS": "80"})
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
    assert approval in first_column(narrow.stdout)  # folded, never cut
    approved = cli("approvals", "approve", approval[:8], "--by", "ada", env=env)  # a prefix
    assert approved.returncode == 0, approved.stderr
    assert f"{approval}: approved" in approved.stdout
    done = cli(*write, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert (workspace.ws / "cli.txt").read_text() == "from cli"

    refused = cli("tools", "run", "fs.read", "--args", '{"path": "/etc/passwd"}', "--caller",
                  "agent", env=env)  # fmt: skip
    assert refused.returncode == 1
    assert "forbidden" in refused.stderr


@pytest.mark.slow
def test_approvals_are_named_by_a_unique_prefix(cluster: dict[str, str]) -> None:
    env = cluster
    first = "prefix-0"
    # a second key whose approval id starts with the same character (found, not random)
    second = next(
        key
        for key in (f"prefix-{i}" for i in range(1, 1000))
        if approval_id("agent", key)[0] == approval_id("agent", first)[0]
    )
    ids = []
    for key in (first, second):
        asked = cli("tools", "run", "fs.write", "--args", '{"path": "p.txt", "content": "x"}',
                    "--caller", "agent", "--idempotency-key", key, env=env)  # fmt: skip
        assert asked.returncode == 3, asked.stderr
        ids.append(json.loads(asked.stdout)["approval_id"])
    assert ids == [approval_id("agent", first), approval_id("agent", second)]

    ambiguous = cli("approvals", "deny", ids[0][0], env=env)
    assert ambiguous.returncode == 2
    assert "ambiguous" in ambiguous.stderr
    assert ids[0] in ambiguous.stderr
    assert ids[1] in ambiguous.stderr
    unknown = cli("approvals", "deny", "not-an-id", env=env)
    assert unknown.returncode == 2
    assert "no approval id is or starts with 'not-an-id'" in unknown.stderr
    assert "approvals list" in unknown.stderr

    common = next(i for i, (a, b) in enumerate(zip(*ids, strict=True)) if a != b)
    denied = cli("approvals", "deny", ids[1][: common + 1], env=env)
    assert denied.returncode == 0, denied.stderr
    assert f"{ids[1]}: denied" in denied.stdout
    pending = cli("approvals", "list", "--status", "pending", "--json", env=env)
    assert [a["approval_id"] for a in json.loads(pending.stdout)] == [ids[0]]


def first_column(table: str) -> str:
    """The first column of a Rich table, its folded lines joined."""
    return "".join(line.split("│")[1].strip() for line in table.splitlines() if "│" in line)
