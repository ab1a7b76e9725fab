"""Fixtures of the docker tests: an engine (or a skip with the reason), the images, a cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from docker_helpers import Cluster, NatsContainer, build_images, engine_problem

# nats + the seven agentbus services of docker-compose.yml have a healthcheck (Prometheus not).
HEALTHCHECKED = 8


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = engine_problem()
    if problem is not None:
        print(f"\ndocker tests skipped: {problem}")
        pytest.skip(f"docker tests need a Docker engine: {problem}")


@pytest.fixture(scope="session")
def images(docker_engine: None) -> float:
    """Build (or refresh from the layer cache) every image; the seconds it took."""
    return build_images()


@pytest.fixture(scope="session")
def cluster(images: float) -> Iterator[Cluster]:
    """``docker compose --profile metrics up`` of the whole cluster, taken down with its volumes."""
    running = Cluster()
    try:
        running.compose("up", "-d", "--no-build", timeout=600)
        running.wait_healthy(HEALTHCHECKED)
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture
def nats_in_container(images: float) -> Iterator[NatsContainer]:
    """NATS with JetStream in a container of our image (testcontainers), on a network of its own
    where it is ``nats:4222``; the host reaches it on a loopback port."""
    with NatsContainer() as nats:
        yield nats
