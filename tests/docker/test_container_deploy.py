"""Blue/green with the container backend: each version runs as containers of an image built for
its commit, on NATS in a container (testcontainers); a steady load loses no request through a
promotion and a rollback."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from deploy_helpers import (
    SMOKE_PAYLOAD,
    TARGET,
    Answer,
    Ask,
    Load,
    ask_interface,
    cluster_file,
    deploy_cli,
    git,
    make_repo,
    smoke,
)
from docker_helpers import APP_IMAGE, NatsContainer
from framework_helpers import unique

from agentbus.framework import Bus, Settings
from agentbus.framework.deploy.backends import Release
from agentbus.framework.deploy.backends.docker import LABEL, DockerBackend
from agentbus.framework.deploy.policy import Outcome, PromotionPolicy
from agentbus.framework.deploy.promote import Promoter
from agentbus.framework.testing import child_environment, eventually
from agentbus.interfaces.message import Interface
from agentbus.interfaces.metadata import Source

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

POLICY = PromotionPolicy(
    health_timeout=60.0,
    switch_timeout=15.0,
    bake_seconds=2.0,
    check_interval=0.25,
    min_requests=20,
    stop_grace=5.0,
)
IMAGE_REPO = "agentbus/release-test"
CLI = [sys.executable, "-m", "agentbus.framework.cli"]


@dataclass
class Kit:
    component: str
    interface: Interface[Ask, Answer]
    backend: DockerBackend
    promoter: Promoter
    client: docker.DockerClient

    def release(self, tag: str, version: str) -> Release:
        return Release(self.component, TARGET, tag, version=version)

    def containers(self, color: str) -> list[str]:
        found = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL}={self.component}", f"io.agentbus.color={color}"]}
        )
        return [c.name or "" for c in found]


def remove_deployed(client: docker.DockerClient, component: str) -> None:
    """Remove every container and image the docker backend made for ``component``."""
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={component}"}):
        container.remove(force=True, v=True)
    for image in client.images.list(filters={"label": f"{LABEL}={component}"}):
        client.images.remove(image.id, force=True)


@pytest.fixture
def docker_client(docker_engine: None) -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
async def kit(
    nats_in_container: NatsContainer, docker_client: docker.DockerClient, tmp_path: Path
) -> AsyncIterator[Kit]:
    repo = make_repo(tmp_path / "repo")
    component = unique("svc")
    interface = ask_interface(f"test.deploy{uuid.uuid4().hex[:10]}")
    backend = DockerBackend(
        repo,
        nats_url=nats_in_container.inner_url,
        network=nats_in_container.network_name,
        runtime_image=APP_IMAGE,
        image_repo=IMAGE_REPO,
        env={
            "DEPLOY_TEST_INTERFACE": interface.name,
            "DEPLOY_TEST_SERVICE": component,
            "AGENTBUS_SHUTDOWN_GRACE": "5",
        },
        client=docker_client,
    )
    settings = Settings(nats_url=nats_in_container.url)
    try:
        async with Bus(settings, Source("docker-test", "deploy")) as bus:
            yield Kit(component, interface, backend, Promoter(bus, backend, POLICY), docker_client)
    finally:
        remove_deployed(docker_client, component)


def test_nats_in_a_container_answers_the_health_command(
    nats_in_container: NatsContainer,
) -> None:
    result = subprocess.run(
        [*CLI, "--nats-url", nats_in_container.url, "health"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "jetstream" in json.loads(result.stdout)


async def test_container_promotion_and_rollback_under_load_lose_no_request(kit: Kit) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    assert kit.containers("blue") == [f"{kit.component}-blue-{first.commit[:12]}-0"]

    load = Load(kit.promoter.bus, kit.interface)
    load.start()
    try:
        await eventually(lambda: load.versions["1"] > 50, timeout=30, what="load on v1")
        second = await kit.promoter.promote(kit.release("v2", "2"), smoke(kit.interface))
        assert second.outcome is Outcome.PROMOTED, second.reason
        await eventually(lambda: load.versions["2"] > 50, timeout=30, what="load on v2")
        assert kit.containers("blue") == [], "the bake passed: v1's containers are gone"
        assert kit.containers("green") == [f"{kit.component}-green-{second.commit[:12]}-0"]

        record = await kit.promoter.rollback(kit.component)  # restarts v1's image, flips back
        assert record.version == "1"
        mark = len(load.order)
        await eventually(
            lambda: load.order[mark:].count("1") > 50, timeout=30, what="load back on v1"
        )
    finally:
        await load.stop()

    assert not load.lost, f"{len(load.lost)} of {load.total} lost, first: {load.lost[0]}"
    assert not load.errors, load.errors
    assert set(load.order[-20:]) == {"1"}
    assert kit.containers("green") == [], "v2 stopped after the rollback"
    assert len(kit.containers("blue")) == 1
    tags = {t for i in kit.client.images.list(name=IMAGE_REPO) for t in i.tags}
    assert {f"{IMAGE_REPO}:{kit.component}-{c.commit[:12]}" for c in (first, second)} <= tags


async def test_a_version_that_cannot_start_is_rejected_and_blue_keeps_serving(kit: Kit) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason

    result = await kit.promoter.promote(kit.release("crash", "bad"), smoke(kit.interface))

    assert result.outcome is Outcome.REJECTED
    reply = await kit.promoter.bus.request(kit.interface, Ask(n=1), timeout=5)
    assert reply.version == "1"
    assert kit.containers("green") == [], "the crashed version's containers were removed"


def test_the_deploy_command_promotes_and_rolls_back_containers(
    nats_in_container: NatsContainer, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    component = unique("cli")
    interface = f"test.deploycli{uuid.uuid4().hex[:8]}"
    cluster_file(repo, component, interface)
    env = child_environment()
    env.update(
        AGENTBUS_NATS_URL=nats_in_container.url,
        AGENTBUS_DEPLOY_IMAGE=APP_IMAGE,
        AGENTBUS_DEPLOY_NETWORK=nats_in_container.network_name,
        AGENTBUS_DEPLOY_NATS_URL=nats_in_container.inner_url,
    )
    smoke_request = json.dumps({"interface": interface, "major": 1, "payload": SMOKE_PAYLOAD})

    deploy = deploy_cli(repo, [*CLI, "--data-dir", str(tmp_path / "agentbus")], env, timeout=300)

    def colors() -> dict[str, str]:
        found = docker_client.containers.list(filters={"label": f"{LABEL}={component}"})
        return {c.labels["io.agentbus.color"]: c.labels["io.agentbus.commit"] for c in found}

    try:
        first = deploy("promote", component, "--backend", "docker", "--commit", "v1")
        assert first.returncode == 0, first.stdout + first.stderr
        second = deploy(
            "promote", component, "--backend", "docker", "--commit", "v2", "--bake", "0.5",
            "--smoke", smoke_request,
        )  # fmt: skip
        assert second.returncode == 0, second.stdout + second.stderr
        assert colors() == {"green": git(repo, "rev-parse", "v2")}

        back = deploy("rollback", component)  # no --backend: the record says docker

        assert back.returncode == 0, back.stdout + back.stderr
        assert colors() == {"blue": git(repo, "rev-parse", "v1")}
        status = deploy("status", component, "--json")
        assert json.loads(status.stdout)["runtime"]["backend"] == "docker"
    finally:
        remove_deployed(docker_client, component)
