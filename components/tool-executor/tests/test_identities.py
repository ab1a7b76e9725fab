"""The executor under least privilege: callers are the identities the server vouches for.

A real nats-server runs the config ``agentbus auth`` derives: the executor's grants come
from its class, ``agent`` may list and execute tools, the operator may decide approvals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import Workspace

from agentbus.framework import Bus, EmbeddedNats, PermissionDeniedError, RemoteError, Settings
from agentbus.framework.auth import (
    OPERATOR,
    AuthFolder,
    Identity,
    client_grants,
    operator_grants,
    service_grants,
)
from agentbus.framework.testing import Intruder, settings_as
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    TOOLS_EXECUTE,
    TOOLS_LIST,
    ApprovalRequired,
    Completed,
    DecideRequest,
    ExecuteRequest,
)
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.approvals import APPROVALS_BUCKET
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.service import ToolExecutor

EXECUTOR = "tool-executor"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = AuthFolder(tmp_path_factory.mktemp("exec-auth"))
    folder.write(
        [
            Identity(EXECUTOR, "service", service_grants(ToolExecutor, EXECUTOR)),
            Identity("agent", "client", client_grants("agent", (TOOLS_LIST, TOOLS_EXECUTE))),
            Identity(
                "approver", "client", client_grants("approver", (TOOLS_EXECUTE, APPROVALS_DECIDE))
            ),
            Identity(OPERATOR, "operator", operator_grants(REGISTRY)),
        ]
    )
    with EmbeddedNats(tmp_path_factory.mktemp("exec-nats"), auth=folder.server_config) as server:
        yield folder, server.url


def settings_of(cluster: Any, name: str, tmp: Path) -> Settings:
    return settings_as(*cluster, name, tmp, jetstream_storage="memory")


@pytest.fixture
async def buses(cluster: Any, tmp_path: Path, workspace: Workspace) -> AsyncIterator[Any]:
    policy = {
        "roots": [str(workspace.ws)],
        "tools": ["*"],
        "commands": ["echo"],
        "medium": "ask",
    }
    config = {"policy": {"agent": policy, "approver": policy}}
    executor = ToolExecutor(
        settings_of(cluster, EXECUTOR, tmp_path), policies=PolicyFile.parse(config)
    )
    await executor.start()
    opened: list[Bus] = []

    async def connect(name: str) -> Bus:
        bus = await Bus(settings_of(cluster, name, tmp_path), Source(name, "t")).connect()
        opened.append(bus)
        return bus

    yield connect
    for bus in opened:
        await bus.close()
    await executor.stop()


def call(caller: str, key: str) -> ExecuteRequest:
    return ExecuteRequest(
        tool="shell.exec", arguments={"argv": ["echo", "hi"]}, caller=caller, idempotency_key=key
    )


async def test_only_the_operator_decides_and_a_caller_never_decides_its_own_call(
    buses: Any,
) -> None:
    agent, approver, operator = await buses("agent"), await buses("approver"), await buses(OPERATOR)
    asked = (await agent.request(TOOLS_EXECUTE, call("agent", "k1"), timeout=20)).result
    assert isinstance(asked, ApprovalRequired)
    decision = DecideRequest(approval_id=asked.approval_id, decision="approve", decided_by="x")

    with pytest.raises(PermissionDeniedError, match="agent"):  # no grant to decide at all
        await agent.request_raw(
            "agentbus.tools.approvals.decide.v1.agent", decision.model_dump_json().encode()
        )
    own = (await approver.request(TOOLS_EXECUTE, call("approver", "k2"), timeout=20)).result
    with pytest.raises(RemoteError) as refused:  # granted to decide, but not its own call
        await approver.request(
            APPROVALS_DECIDE,
            DecideRequest(approval_id=own.approval_id, decision="approve", decided_by="x"),
        )
    assert refused.value.code == "forbidden"

    approved = (await operator.request(APPROVALS_DECIDE, decision)).approval
    assert approved.status == "approved"
    done = (await agent.request(TOOLS_EXECUTE, call("agent", "k1"), timeout=20)).result
    assert isinstance(done, Completed)


async def test_a_caller_cannot_use_another_callers_policy_or_write_the_approvals(
    buses: Any, cluster: Any
) -> None:
    agent = await buses("agent")
    with pytest.raises(RemoteError) as other:  # the caller field must be the identity
        await agent.request(TOOLS_EXECUTE, call("approver", "k3"), timeout=20)
    assert other.value.code == "forbidden"

    folder, url = cluster
    intruder = await Intruder.connect(url, folder.seed_file("agent"))
    try:
        for subject in (f"$KV.{APPROVALS_BUCKET}.forged", f"agentbus.tools.execute.v1.{OPERATOR}"):
            await intruder.publish(subject, b'{"status": "approved"}')
            await intruder.refused(subject)
    finally:
        await intruder.close()
