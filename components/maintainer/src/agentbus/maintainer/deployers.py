"""How a tested commit goes live: the :class:`Deployer` protocol and its two kinds.

Both write the framework's deployments record (``agentbus.framework.deploy``:
bucket ``agentbus_deployments``, key ``<component>``, a :class:`DeploymentRecord`
written with compare-and-set through :class:`DeploymentStore`).
:class:`PointerDeployer` only moves the record's active color (for components
without a service, like the sample): no process is started. :class:`BlueGreenDeployer`
runs the framework's blue/green promotion, which also starts the new color (as
processes from a worktree at the commit, or as containers of an image built for
it: ``AGENTBUS_DEPLOY_BACKEND``), checks health, contract and error rate, and
rolls back on a regression: a version it does not promote raises
:class:`PromotionRejected`, and the maintainer escalates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from git import Git, GitCommandError

from agentbus.framework import Bus, Settings
from agentbus.framework.deploy import DeployedVersion, DeploymentRecord, DeploymentStore
from agentbus.framework.deploy.backends import Backend, Release, backend_for
from agentbus.framework.deploy.policy import Outcome, PromotionPolicy
from agentbus.framework.deploy.promote import promote as blue_green
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import MaintainerError
from agentbus.maintainer.gitwork import open_repo
from agentbus.maintainer.testmatrix import LOCK_FILE, install_lock


class PromotionRejected(MaintainerError):
    """The deployment did not make the new version live (rejected or rolled back)."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """What went live: ``previous`` is the version it replaced (version, commit, color)."""

    component: str
    version: str
    commit: str
    color: str
    previous: dict[str, Any] | None


class Deployer(Protocol):
    """Makes ``commit`` (at ``version``) the live version of ``component``."""

    async def deploy(self, component: str, commit: str, version: str) -> Deployed: ...


def summary(version: DeployedVersion | None) -> dict[str, Any] | None:
    """The part of a deployed version a decision record keeps."""
    if version is None:
        return None
    return {"version": version.version, "commit": version.commit, "color": version.color}


async def current_deployment(bus: Bus, component: str) -> DeploymentRecord | None:
    """The component's deployments record, ``None`` when it was never deployed."""
    current = await (await DeploymentStore.open(bus.js)).get(component)
    return current.record if current is not None else None


def deployer_for(bus: Bus, component: ComponentContext, settings: Settings) -> Deployer:
    """Blue/green (processes or containers) when agent-config names a service and the
    strategy is ``blue-green``, else the pointer alone."""
    config = component.config
    if config["deploy_strategy"] == "blue-green" and "service" in config:
        return BlueGreenDeployer(
            bus, component_dir=component.path, service=config["service"], settings=settings
        )
    return PointerDeployer(bus)


class PointerDeployer:
    """Moves the component's active color in ``agentbus_deployments``; starts nothing.

    The new version takes the color not active now (blue first), the active one
    becomes ``previous``; a compare-and-set lost to another writer is retried on a
    fresh read, up to ``attempts`` times.
    """

    def __init__(self, bus: Bus, attempts: int = 10) -> None:
        self._bus = bus
        self._attempts = attempts

    async def deploy(self, component: str, commit: str, version: str) -> Deployed:
        store = await DeploymentStore.open(self._bus.js)
        now = await store.point(component, version=version, commit=commit, attempts=self._attempts)
        record = now.record
        return Deployed(component, version, commit, record.color, summary(record.previous))


class BlueGreenDeployer:
    """Deploys blue/green through ``agentbus.framework.deploy`` with the backend ``settings`` name
    (``deploy_backend``: local processes or containers).

    ``service`` is the agent-config ``service`` object (``target``, optional ``name``,
    ``python_paths`` relative to the component folder, ``replicas``, ``bake_seconds``).
    The component's repository is looked up at the first promotion.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        component_dir: Path,
        service: Mapping[str, Any],
        settings: Settings,
        policy: PromotionPolicy | None = None,
    ) -> None:
        self._bus = bus
        self._component_dir = component_dir
        self._settings = settings
        self._sites = settings.data_dir / "deploy" / "sites"
        self._service = dict(service)
        if policy is None and "bake_seconds" in service:
            policy = PromotionPolicy(bake_seconds=float(service["bake_seconds"]))
        self._policy = policy
        self._backend: Backend | None = None
        self._checkout: tuple[Path, Path] | None = None

    def _where(self) -> tuple[Path, Path]:
        """The component's repository root, and the component folder's path inside it."""
        if self._checkout is None:
            repo, relative = open_repo(self._component_dir)
            with repo:
                self._checkout = (Path(str(repo.working_tree_dir)), relative)
        return self._checkout

    @property
    def backend(self) -> Backend:
        """The chosen backend, rooted at the component's repository."""
        if self._backend is None:
            root, relative = self._where()
            paths = self._service.get("python_paths", ["src", "."])
            self._backend = backend_for(
                self._settings,
                root,
                nats_url=str(self._bus.url),
                python_paths=[str(relative / p) for p in paths],
            )
        return self._backend

    async def _site(self, commit: str) -> Path | None:
        """The version's own dependencies: its requirements.lock installed into a folder
        that goes on the deployed version's import path (None when it has no lock)."""
        root, relative = self._where()
        try:
            lock = Git(root).show(f"{commit}:{(relative / LOCK_FILE).as_posix()}")
        except GitCommandError:
            return None
        site = self._sites / commit
        if not site.is_dir():
            self._sites.mkdir(parents=True, exist_ok=True)
            lock_file = self._sites / f"{commit}.lock"
            lock_file.write_text(lock + "\n", encoding="utf-8")
            await install_lock(lock_file, site, label="deployed", timeout=300)
        return site

    async def deploy(self, component: str, commit: str, version: str) -> Deployed:
        release = Release(
            component=component,
            target=str(self._service["target"]),
            commit=commit,
            version=version,
            service=str(self._service.get("name", "")),
            replicas=int(self._service.get("replicas", 1)),
            site=await self._site(commit),
        )
        result = await blue_green(self._bus, self.backend, release, policy=self._policy)
        if result.outcome is not Outcome.PROMOTED:
            raise PromotionRejected(
                f"blue/green did not promote {version}: {result.outcome.value} {result.reason}"
            )
        record = result.record or await current_deployment(self._bus, component)
        return Deployed(
            component,
            version,
            result.commit,
            record.color if record is not None else "",
            summary(record.previous) if record is not None else None,
        )
