"""Promotion behind a small protocol; the default records blue/green in KV with compare-and-set.

Bucket ``agentbus_deployments``, key ``<component>``, value::

    {"version": "1.0.1", "commit": "<sha>", "color": "green",
     "previous": {"version": "1.0.0", "commit": "<sha>", "color": "blue"} | null,
     "updated_at": "2026-11-21T09:00:00+00:00"}

:class:`KVPromoter` only moves that pointer (for components without a service, like
the sample). :class:`BlueGreenPromoter` goes through the framework's blue/green
deployment (``agentbus.framework.deploy``), which keeps the same bucket and shape and
also runs the new color (as processes from a worktree at the commit, or as containers
of an image built for it: ``AGENTBUS_DEPLOY_BACKEND``), checks health,
contract and error rate, and rolls back on a regression: a version it does not
promote raises :class:`PromotionRejected`, and the maintainer escalates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from git import Git, GitCommandError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.deploy import Backend, Outcome, Policy, Release
from agentbus.framework.deploy import promote as deploy
from agentbus.framework.deploy.backend import backend_for
from agentbus.framework.jetstream import key_value
from agentbus.maintainer.errors import MaintainerError
from agentbus.maintainer.gitwork import open_repo
from agentbus.maintainer.testmatrix import LOCK_FILE, install_lock

DEPLOYMENTS_BUCKET = "agentbus_deployments"


class PromotionRejected(MaintainerError):
    """The deployment did not make the new version live (rejected or rolled back)."""


@dataclass(frozen=True, slots=True)
class PromotionResult:
    component: str
    version: str
    commit: str
    color: str
    previous: dict[str, Any] | None


class Promoter(Protocol):
    """Makes ``commit`` (at ``version``) the live version of ``component``."""

    async def promote(self, component: str, commit: str, version: str) -> PromotionResult: ...


async def current_deployment(bus: Bus, component: str) -> dict[str, Any] | None:
    kv = await key_value(bus.js, DEPLOYMENTS_BUCKET)
    try:
        entry = await kv.get(component)
    except KeyNotFoundError:
        return None
    return json.loads(entry.value) if entry.value else None


class KVPromoter:
    """Flips the component's color in ``agentbus_deployments`` (compare-and-set, retried)."""

    def __init__(self, bus: Bus, attempts: int = 10) -> None:
        self._bus = bus
        self._attempts = attempts

    async def promote(self, component: str, commit: str, version: str) -> PromotionResult:
        kv = await key_value(self._bus.js, DEPLOYMENTS_BUCKET)
        for _ in range(self._attempts):
            try:
                entry = await kv.get(component)
                current = json.loads(entry.value) if entry.value else None
                revision: int | None = entry.revision
            except KeyNotFoundError:
                current, revision = None, None
            color = "blue" if current is None or current.get("color") == "green" else "green"
            previous = (
                None
                if current is None
                else {k: current.get(k) for k in ("version", "commit", "color")}
            )
            value = {
                "version": version,
                "commit": commit,
                "color": color,
                "previous": previous,
                "updated_at": datetime.now(UTC).isoformat(),
            }
            data = json.dumps(value).encode()
            try:
                if revision is None:
                    await kv.create(component, data)
                else:
                    await kv.update(component, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone else promoted in between: read again
            return PromotionResult(component, version, commit, color, previous)
        raise RuntimeError(f"could not promote {component}: the deployment record kept changing")


class BlueGreenPromoter:
    """Promotes through ``agentbus.framework.deploy`` with the backend ``settings`` name
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
        policy: Policy | None = None,
    ) -> None:
        self._bus = bus
        self._component_dir = component_dir
        self._settings = settings
        self._sites = settings.data_dir / "deploy" / "sites"
        self._service = dict(service)
        if policy is None and "bake_seconds" in service:
            policy = Policy(bake_seconds=float(service["bake_seconds"]))
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

    async def promote(self, component: str, commit: str, version: str) -> PromotionResult:
        release = Release(
            component=component,
            target=str(self._service["target"]),
            commit=commit,
            version=version,
            service=str(self._service.get("name", "")),
            replicas=int(self._service.get("replicas", 1)),
            site=await self._site(commit),
        )
        result = await deploy(self._bus, self.backend, release, policy=self._policy)
        if result.outcome is not Outcome.PROMOTED:
            raise PromotionRejected(
                f"blue/green did not promote {version}: {result.outcome.value} {result.reason}"
            )
        current = await current_deployment(self._bus, component) or {}
        previous = current.get("previous")
        return PromotionResult(
            component,
            version,
            result.commit,
            str(current.get("color", "")),
            {k: previous.get(k) for k in ("version", "commit", "color")} if previous else None,
        )
