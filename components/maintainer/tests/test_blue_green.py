"""Promotion through the framework's blue/green deployment: a real service, started as
processes from a git worktree at each commit, flipped blue -> green; a version that does not
start is rejected and the live one stays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git
import pytest
from maintainer_helpers import Decisions, MakeSample, StartMaintainer, head

from agentbus.framework import Bus, Settings
from agentbus.framework.deploy.policy import PromotionPolicy
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED, DependencyUpdated
from agentbus.interfaces.metadata import new_id
from agentbus.maintainer.deployers import BlueGreenDeployer, PromotionRejected, current_deployment

ROOT = Path(__file__).resolve().parents[3]
HELLO = ROOT / "examples" / "hello" / "hello_service.py"


def commit_all(repo: git.Repo, message: str) -> str:
    repo.git.add(A=True)
    who = git.Actor("test", "test@example.invalid")
    return repo.index.commit(message, author=who, committer=who).hexsha


@pytest.mark.slow
async def test_blue_green_promotes_a_running_service_and_rejects_a_broken_one(
    tmp_path: Path, bus: Bus, settings: Settings
) -> None:
    component = tmp_path / "repo" / "hello"
    component.mkdir(parents=True)
    shutil.copy(HELLO, component / "hello_service.py")
    with git.Repo.init(tmp_path / "repo") as repo:
        first = commit_all(repo, "hello 1.0.0")
        (component / "NOTES.md").write_text("1.0.1\n")
        second = commit_all(repo, "hello 1.0.1")
        (component / "hello_service.py").write_text("raise ImportError('broken on purpose')\n")
        broken = commit_all(repo, "hello 1.0.2, broken")

    name = f"hello-{new_id()[:6]}"
    deployer = BlueGreenDeployer(
        bus,
        component_dir=component,
        service={"target": "hello_service:HelloService", "name": "hello", "python_paths": ["."]},
        settings=settings,
        policy=PromotionPolicy(
            health_timeout=20, bake_seconds=0.5, check_interval=0.25, stop_grace=2
        ),
    )
    try:
        blue = await deployer.deploy(name, first, "1.0.0")
        assert (blue.color, blue.previous) == ("blue", None)
        green = await deployer.deploy(name, second, "1.0.1")
        assert green.color == "green"
        assert green.previous == {"version": "1.0.0", "commit": first, "color": "blue"}

        with pytest.raises(PromotionRejected, match="rejected"):
            await deployer.deploy(name, broken, "1.0.2")
        live = await current_deployment(bus, name)
        assert live is not None
        assert (live.version, live.commit, live.color) == ("1.0.1", second, "green")
    finally:
        await deployer.backend.stop_started(grace=2)


async def greet(bus: Bus) -> dict[str, str]:
    reply = await bus.request_raw("agentbus.sample.greet.v1.test", b'{"name": "Ada"}', timeout=5)
    answer: dict[str, str] = json.loads(reply.data)
    return answer


@pytest.mark.slow
async def test_a_patch_update_is_promoted_blue_green_as_running_processes(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, settings: Settings
) -> None:
    component = make_sample(service=True)
    name = component.name
    config = json.loads((component / "context" / "agent-config.json").read_text())
    seed = BlueGreenDeployer(
        bus, component_dir=component, service=config["service"], settings=settings
    )
    maintainer = None
    try:
        live = await seed.deploy(name, head(component), "1.0.0")
        assert live.color == "blue"
        assert await greet(bus) == {"greeting": "Hello, Ada!", "version": "1.0.0"}
        decisions = await Decisions.watch(bus, name)
        maintainer = await start_maintainer(component, blue_green=True)
        assert isinstance(maintainer.deployer, BlueGreenDeployer)

        await bus.publish(
            DEPENDENCY_UPDATED,
            DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="1.0.1"),
        )
        promoted = await decisions.wait_for("promoted", timeout=90)
        assert (promoted.details["previous"], promoted.details["color"]) == (  # type: ignore[index]
            {"version": "1.0.0", "commit": live.commit, "color": "blue"},
            "green",
        )
        assert await greet(bus) == {"greeting": "Hello, Ada!", "version": "1.0.1"}
        record = await current_deployment(bus, name)
        assert record is not None
        assert record.serving == ("green",)
        assert record.previous is not None
        assert record.previous.runtime is None  # the bake passed: blue was stopped
    finally:
        if maintainer is not None:
            await maintainer.deployer.backend.stop_started(grace=2)  # type: ignore[attr-defined]
        await seed.backend.stop_started(grace=2)
