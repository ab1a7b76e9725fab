"""What every backend is: it runs one version of a component under one color, and stops it.

A backend's ``start`` returns a :class:`Running`; what is needed to stop that version
later goes into the deployments record as ``runtime``, so any deployer (another
process, a rollback days later) can stop it. A ``runtime`` read back from the record
is untrusted input: anyone who can write the KV bucket writes it. Backends check it
(:meth:`Backend.check_runtime`) before they stop, signal or delete anything it names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentbus.framework.deploy.state import Color
from agentbus.framework.errors import ConfigError
from agentbus.interfaces.subjects import token


@dataclass(frozen=True, slots=True)
class Release:
    """What to deploy: a component's service at one commit."""

    component: str
    target: str
    """``module:Class`` of the service, importable from the checkout."""
    commit: str
    """A commit, tag or branch; backends resolve it to a full sha."""
    version: str = ""
    """Shown in status; default: the short sha."""
    service: str = ""
    """The service's ``name`` (its ``$SRV`` name); default: the component."""
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    site: Path | None = None
    """A folder of this version's own installed dependencies, on its import path after the
    checkout's ``python_paths`` (``pip install --target``)."""

    def __post_init__(self) -> None:
        token(self.component)
        if ":" not in self.target:
            raise ConfigError(f"target {self.target!r} must look like 'package.module:ClassName'")
        if self.replicas < 1:
            raise ConfigError(f"replicas must be at least 1, got {self.replicas}")

    @property
    def service_name(self) -> str:
        return self.service or self.component


@dataclass(frozen=True, slots=True)
class Running:
    """A started version: its resolved commit, its instances and backend-specific data."""

    release: Release
    color: Color
    commit: str
    instances: tuple[str, ...]
    runtime: dict[str, Any]

    @property
    def version(self) -> str:
        return self.release.version or self.commit[:12]


class Backend(ABC):
    """Starts a version of a component under a color, and stops a started one."""

    @abstractmethod
    async def start(self, release: Release, color: Color) -> Running:
        """Start ``release.replicas`` instances; return once they are launched (not healthy)."""

    @abstractmethod
    def check_runtime(self, runtime: Mapping[str, Any], *, component: str) -> None:
        """Raise :class:`DeployError` (see :func:`tampered`) unless ``runtime`` only names
        what this backend runs for ``component``; acts on nothing."""

    @abstractmethod
    async def stop(
        self, runtime: Mapping[str, Any], *, component: str, grace: float = 10.0
    ) -> None:
        """Stop what a :class:`Running` ``runtime`` of ``component`` describes: SIGTERM
        (drain), then kill. Checks ``runtime`` first: a refused one stops nothing."""

    async def alive(self, runtime: Mapping[str, Any], *, component: str) -> bool:
        """Whether every instance is still running (a backend may not know: ``True``)."""
        return True

    def where_logs(self, running: Running, instance: str) -> str:
        """Where ``instance``'s output is, for a failure message (``""``: not known)."""
        return ""

    @abstractmethod
    async def stop_started(self, *, grace: float = 10.0) -> None:
        """Stop every instance this backend object started that still runs (shutdown, tests).

        Deployed versions outlive their deployer; this is for owners that must not."""
