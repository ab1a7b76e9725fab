"""Backends: how one version of a component is started and stopped (processes, containers).

:func:`backend_for` builds the one ``settings.deploy_backend`` names. The container
backend (and the Docker SDK) is imported only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from agentbus.framework.auth.store import AuthFolder
from agentbus.framework.config import Settings
from agentbus.framework.deploy.backends.base import Backend, Release, Running
from agentbus.framework.deploy.backends.local import LocalBackend

__all__ = ["Backend", "LocalBackend", "Release", "Running", "backend_for"]


def backend_for(
    settings: Settings,
    repo: Path,
    *,
    nats_url: str,
    python_paths: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> Backend:
    """The backend ``settings.deploy_backend`` names, for the checkout at ``repo``.

    ``nats_url`` is the deployer's own; containers use ``settings.deploy_nats_url`` when set."""
    if settings.deploy_backend == "docker":
        from agentbus.framework.deploy.backends.docker import DockerBackend

        return DockerBackend(
            repo,
            nats_url=settings.deploy_nats_url or nats_url,
            runtime_image=settings.deploy_image,
            network=settings.deploy_network,
            python_paths=python_paths,
            env=env,
            keys=AuthFolder.of(settings.data_dir),
        )
    return LocalBackend(
        repo, nats_url=nats_url, data_dir=settings.data_dir, python_paths=python_paths, env=env
    )
