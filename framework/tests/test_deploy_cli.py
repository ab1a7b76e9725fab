"""``agentbus deploy status|promote|rollback`` as a user runs them, on real processes."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import (
    SMOKE_PAYLOAD,
    cluster_file,
    deploy_cli,
    git,
    instances_of,
    kill_instances,
    make_repo,
)
from framework_helpers import unique

from agentbus.framework.config import Settings
from agentbus.framework.testing import child_environment

pytestmark = pytest.mark.slow


@pytest.fixture
def component() -> Iterator[str]:
    name = unique("cli")
    yield name
    kill_instances(name)


def test_promote_reject_status_and_rollback_from_the_command_line(
    settings: Settings, tmp_path: Path, component: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    interface = f"test.deploycli{uuid.uuid4().hex[:8]}"
    cluster_file(repo, component, interface)
    env = child_environment()
    smoke = json.dumps({"interface": interface, "major": 1, "payload": SMOKE_PAYLOAD})
    cli = [sys.executable, "-m", "agentbus.framework.cli", "--nats-url", settings.nats_url or ""]
    deploy = deploy_cli(repo, [*cli, "--data-dir", str(tmp_path / "agentbus")], env, timeout=90)

    def status() -> dict[str, object]:
        done = deploy("status", component, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        record: dict[str, object] = json.loads(done.stdout)
        return record

    never = deploy("status", component)
    assert never.returncode == 1
    assert "never been deployed" in never.stdout

    first = deploy("promote", component, "--commit", "v1", "--version", "1", "--smoke", smoke)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "promoted" in first.stdout
    assert status()["commit"] == git(repo, "rev-parse", "v1")

    bad = deploy("promote", component, "--commit", "smoke-fails", "--smoke", smoke)
    assert bad.returncode == 1
    assert "rejected" in bad.stdout
    assert "expected success, got internal" in bad.stdout
    assert status()["commit"] == git(repo, "rev-parse", "v1")

    second = deploy(
        "promote", component, "--commit", "v2", "--version", "2", "--smoke", smoke, "--bake", "0.5"
    )
    assert second.returncode == 0, second.stdout + second.stderr
    record = status()
    assert (record["version"], record["color"]) == ("2", "green")
    table = deploy("status", component)
    assert "active green 2" in table.stdout
    assert "serving" in table.stdout

    back = deploy("rollback", component)
    assert back.returncode == 0, back.stdout + back.stderr
    record = status()
    assert (record["version"], record["color"], record["serving"]) == ("1", "blue", ["blue"])
    assert len(instances_of(f"{component}-blue")) == 1
    assert not instances_of(f"{component}-green")
