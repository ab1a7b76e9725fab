"""The runner under least privilege: the grants ``agentbus up`` derives for it, on a server
that admits only a cluster's identities.

It takes runs, keeps their records and events, and starts runs from an event route of an
app named in ``AGENTBUS_RUNNER_APPS`` (its durable is granted because the app is), but it
may not decide approvals, not even through its own bus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import NOTE_TAKEN, Note, wait_status

from agentbus.framework import Bus, EmbeddedNats, PermissionDeniedError
from agentbus.framework.auth import OPERATOR, AuthFolder
from agentbus.framework.auth.cluster import cluster_identities
from agentbus.framework.supervisor import ClusterFile
from agentbus.framework.testing import Intruder, settings_as
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.catalog.tools import APPROVALS_DECIDE
from agentbus.interfaces.catalog.workflows import WORKFLOWS_START, StartRequest
from agentbus.interfaces.metadata import Source
from agentbus.interfaces.subjects import as_caller, subject_for
from agentbus.workflow_runner.service import WorkflowRunner

RUNNER = "workflow-runner"


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("AGENTBUS_RUNNER_APPS", "runner_helpers:notes")
    path = tmp_path / "agentbus.toml"
    path.write_text(
        f'[[service]]\nname = "{RUNNER}"\n'
        'target = "agentbus.workflow_runner.service:WorkflowRunner"\n'
        'env = { AGENTBUS_RUNNER_APPS = "runner_helpers:notes" }\n',
        encoding="utf-8",
    )
    folder = AuthFolder(tmp_path / "auth")
    folder.write(cluster_identities(ClusterFile.load(path), REGISTRY))
    with EmbeddedNats(tmp_path / "nats", auth=folder.server_config) as server:
        settings = settings_as(folder, server.url, RUNNER, tmp_path, jetstream_storage="memory")
        async with (
            WorkflowRunner(settings) as runner,
            Bus(
                settings_as(folder, server.url, OPERATOR, tmp_path, jetstream_storage="memory"),
                Source("cli", "t"),
            ) as operator,
        ):
            yield {"runner": runner, "operator": operator, "folder": folder, "url": server.url}


async def test_the_runner_runs_and_routes_under_its_derived_grants(cluster: Any) -> None:
    operator: Bus = cluster["operator"]

    started = await operator.request(
        WORKFLOWS_START, StartRequest(workflow="keep_note", input={"text": "asked"})
    )
    await operator.publish(NOTE_TAKEN, Note(number=3, text="heard"))

    run = await wait_status(operator, started.run_id, "finished", "failed")
    assert run.result == {"kept": "asked"}, run.error
    routed = await wait_status(operator, "note-3", "finished", "failed")
    assert routed.result == {"kept": "heard"}, routed.error


async def test_the_runner_cannot_decide_approvals(cluster: Any) -> None:
    runner: WorkflowRunner = cluster["runner"]
    with pytest.raises(PermissionDeniedError, match="uses"):
        await runner.bus.request_raw(
            as_caller(subject_for(APPROVALS_DECIDE), RUNNER), b"{}", timeout=2
        )
    intruder = await Intruder.connect(cluster["url"], cluster["folder"].seed_file(RUNNER))
    try:
        subject = as_caller(subject_for(APPROVALS_DECIDE), RUNNER)
        await intruder.publish(subject, b"{}")
        await intruder.refused(subject)
    finally:
        await intruder.close()
