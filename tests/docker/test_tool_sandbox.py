"""The tool executor's sandbox in the compose cluster (issue 13, item 1): its container runs
with seccomp=unconfined, so bubblewrap gives each tool process its own mount view there too
(without a /proc, which Docker does not let it mount)."""

from __future__ import annotations

import uuid

import pytest
from docker_helpers import Cluster

from agentbus.framework import Bus
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    TOOLS_EXECUTE,
    ApprovalRequired,
    Completed,
    DecideRequest,
    ExecuteRequest,
)
from agentbus.interfaces.metadata import Source

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]


async def test_shell_exec_in_the_cluster_sees_no_app_folder(cluster: Cluster) -> None:
    # A shell string (the argv ["ls", "/"] is refused: / is outside the roots) asked for as
    # `agent` (tests/docker/tools.test.toml), approved by the operator.
    request = ExecuteRequest(
        tool="shell.exec",
        arguments={"command": "ls /"},
        caller="agent",
        idempotency_key=uuid.uuid4().hex,
    )
    async with Bus(cluster.operator_settings(), Source("docker-test", "pytest")) as bus:
        pending = (await bus.request(TOOLS_EXECUTE, request, timeout=30)).result
        assert isinstance(pending, ApprovalRequired), pending
        decision = DecideRequest(
            approval_id=pending.approval_id, decision="approve", decided_by="docker-test"
        )
        await bus.request(APPROVALS_DECIDE, decision, timeout=30)
        result = (await bus.request(TOOLS_EXECUTE, request, timeout=30)).result
    assert isinstance(result, Completed), result
    assert result.exit_code == 0, result.content
    listed = set(result.content.split())
    assert "usr" in listed, listed
    # /app holds the image's policy, the cluster's identities and every component's context:
    # outside the sandbox ls / shows it; inside only the system and the caller's roots exist.
    assert "app" not in listed, f"the sandbox is not in force in the container: {listed}"
