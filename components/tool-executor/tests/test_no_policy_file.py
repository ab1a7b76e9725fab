"""An executor started with no policy file (a fresh clone's ``agentbus up``): it runs, every
caller may use nothing, its log says how to give it one, and a file created later applies."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from executor_helpers import Workspace
from test_policy_reload import listed, logged, policy_text, replace_file

from agentbus.framework import Bus
from agentbus.framework.testing import eventually
from agentbus.tool_executor.policy import POLICY_ENV
from agentbus.tool_executor.service import ToolExecutor


async def test_no_policy_file_starts_with_nothing_allowed_and_says_how_to_give_one(
    workspace: Workspace,
    start_service: Any,
    bus_as: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # what agentbus.toml passes when the user set nothing: an empty AGENTBUS_TOOLS_POLICY
    monkeypatch.setenv(POLICY_ENV, "")
    monkeypatch.chdir(workspace.base)
    caplog.set_level(logging.INFO, logger="agentbus.tool_executor")
    await start_service(ToolExecutor, settings={"file_watch_interval": 0.05})
    assert logged(
        caplog, logging.WARNING, "no policy file", "may use nothing", POLICY_ENV,
        "tools.example.toml",
    )()  # fmt: skip
    agent: Bus = await bus_as("agent")
    assert await listed(agent) == set()

    replace_file(workspace.base / "tools.toml", policy_text(workspace, ["fs.read"]))

    async def fs_read_listed() -> bool:
        return await listed(agent) == {"fs.read"}

    await eventually(fs_read_listed, what="fs.read listed once tools.toml was created")
