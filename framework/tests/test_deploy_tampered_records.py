"""A tampered deployments record makes a promotion or rollback stop and delete nothing of
anyone else's: real NATS, a real git repository, the local backend.

Whoever can write the ``agentbus_deployments`` bucket writes the ``runtime`` the next
promotion stops; each test writes such a record, runs the deploy step, and checks that
the folder or process the record names is still there.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import TARGET, Answer, Ask, ask_interface, deploy_backend, git, make_repo
from framework_helpers import unique

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.deploy import DeploymentStore
from agentbus.framework.deploy.backends import LocalBackend, Release
from agentbus.framework.deploy.policy import PromotionPolicy
from agentbus.framework.deploy.promote import Promoter
from agentbus.framework.deploy.state import DeployedVersion, DeploymentRecord
from agentbus.framework.errors import DeployError
from agentbus.interfaces.message import Interface

pytestmark = pytest.mark.slow

POLICY = PromotionPolicy(
    health_timeout=30.0, switch_timeout=10.0, bake_seconds=1.0, check_interval=0.2, stop_grace=2.0
)


@dataclass
class Kit:
    component: str
    interface: Interface[Ask, Answer]
    repo: Path
    backend: LocalBackend
    promoter: Promoter
    store: DeploymentStore

    def sha(self, tag: str) -> str:
        return git(self.repo, "rev-parse", tag)

    def worktree(self, color: str, tag: str) -> Path:
        """Where the backend checks ``tag`` out for ``color``: a path it may remove."""
        return self.backend.root / "worktrees" / f"{self.component}-{color}-{self.sha(tag)[:12]}"

    async def write(self, active_runtime: dict[str, Any] | None, previous: DeployedVersion) -> int:
        """A record as someone with write access to the bucket could leave it."""
        record = DeploymentRecord(
            version="2",
            commit=self.sha("v2"),
            color="green",
            target=TARGET,
            service=self.component,
            runtime=active_runtime,
            previous=previous,
        )
        current = await self.store.get(self.component)
        written = await self.store.put(
            self.component, record, revision=current.revision if current else None
        )
        return written.revision

    def stopped_v1(self, runtime: dict[str, Any] | None = None) -> DeployedVersion:
        return DeployedVersion(
            version="1",
            commit=self.sha("v1"),
            color="blue",
            target=TARGET,
            service=self.component,
            instances=(f"{self.component}-blue-{self.sha('v1')[:12]}-0",),
            runtime=runtime,
        )


@pytest.fixture
async def kit(settings: Settings, bus: Bus, tmp_path: Path) -> AsyncIterator[Kit]:
    repo = make_repo(tmp_path / "repo")
    component = unique("svc")
    interface = ask_interface(f"test.deploy{uuid.uuid4().hex[:10]}")
    assert settings.nats_url is not None
    backend = deploy_backend(
        repo, tmp_path / "agentbus", settings.nats_url, interface.name, component, grace=2
    )
    store = await DeploymentStore.open(bus.js)
    try:
        yield Kit(component, interface, repo, backend, Promoter(bus, backend, POLICY), store)
    finally:
        await backend.stop_started(grace=1.0)


async def refusal(step: Awaitable[object]) -> str:
    """The message of the :class:`DeployError` ``step`` raises; empty if it raises none."""
    try:
        await step
    except DeployError as exc:
        return str(exc)
    return ""


def canary(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "canary.txt").write_text("still here\n")
    return folder / "canary.txt"


async def test_a_promotion_does_not_remove_a_worktree_outside_the_deploy_folder(
    kit: Kit, tmp_path: Path
) -> None:
    victim = canary(tmp_path / "precious")
    outside = {"backend": "local", "pids": [], "instances": [], "worktree": str(victim.parent)}
    revision = await kit.write(None, kit.stopped_v1(outside))

    message = await refusal(kit.promoter.promote(Release(kit.component, TARGET, "v2")))

    assert victim.exists(), "the folder the record named is still there"
    assert f"refusing to remove '{victim.parent}'" in message
    assert f"the deployments record of {kit.component} may have been tampered with" in message
    assert f"agentbus deploy status {kit.component}" in message
    current = await kit.store.get(kit.component)
    assert current is not None
    assert current.revision == revision, "the record was not touched"
    assert not (kit.backend.root / "worktrees").exists(), "nothing was started"


@pytest.mark.parametrize("link", ["the worktree", "the worktrees folder"])
async def test_a_rollback_does_not_follow_a_symlink_out_of_the_deploy_folder(
    kit: Kit, tmp_path: Path, link: str
) -> None:
    worktree = kit.worktree("green", "v2")
    outside = tmp_path / "outside"
    if link == "the worktree":  # <root>/worktrees/<name> -> outside/<name>
        worktree.parent.mkdir(parents=True)
        victim = canary(outside / worktree.name)
        worktree.symlink_to(victim.parent, target_is_directory=True)
    else:  # <root>/worktrees -> outside: the path looks right, what it reaches is not ours
        victim = canary(outside / worktree.name)
        worktree.parent.parent.mkdir(parents=True)
        worktree.parent.symlink_to(outside, target_is_directory=True)
    runtime = {"backend": "local", "pids": [], "instances": [], "worktree": str(worktree)}
    await kit.write(runtime, kit.stopped_v1())

    message = await refusal(kit.promoter.rollback(kit.component))

    assert victim.exists(), f"{link} led out of the deploy folder and nothing was removed"
    assert (
        f"refusing to remove {worktree}: it leads to {victim.parent} through a symlink" in message
    )
    assert f"may have been tampered with: check `agentbus deploy status {kit.component}`" in message


@pytest.fixture
def stranger(kit: Kit) -> Iterator[subprocess.Popen[bytes]]:
    """A process the backend did not start, whose command line names an instance of the
    version the record says is active (what a pid-only check would take for ours)."""
    instance = f"{kit.worktree('green', 'v2').name}-0"
    argv = ["-c", "import time; time.sleep(600)", "agentbus.framework.cli", "serve", TARGET]
    process = subprocess.Popen([sys.executable, *argv, "--instance", instance])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def test_a_rollback_does_not_signal_a_process_the_backend_did_not_start(
    kit: Kit, bus: Bus, stranger: subprocess.Popen[bytes]
) -> None:
    worktree = kit.worktree("green", "v2")
    active = {
        "backend": "local",
        "pids": [stranger.pid],
        "instances": [f"{worktree.name}-0"],
        "worktree": str(worktree),
    }
    await kit.write(active, kit.stopped_v1())

    record = await kit.promoter.rollback(kit.component)  # restarts v1, then stops "green"

    assert (record.version, record.color) == ("1", "blue")
    assert (await bus.request(kit.interface, Ask(n=1), timeout=10)).version == "1"
    assert stranger.poll() is None, "the stranger was not signalled"


async def test_a_record_naming_any_instance_is_refused_before_anything_is_signalled(
    kit: Kit, stranger: subprocess.Popen[bytes]
) -> None:
    worktree = kit.worktree("green", "v2")
    active = {
        "backend": "local",
        "pids": [stranger.pid],
        "instances": [""],
        "worktree": str(worktree),
    }
    await kit.write(active, kit.stopped_v1())

    message = await refusal(kit.promoter.rollback(kit.component))

    assert stranger.poll() is None, "the stranger was not signalled"
    assert "refusing to stop instance '': not an instance of this version" in message


@pytest.mark.parametrize(
    ("target", "commit"),
    [
        ("x:Y --instance other -m pip", None),  # extra arguments, not a module:Class
        (None, "--output=/tmp/agentbus-tampered"),  # an option, not a commit
        (None, "v1"),  # a name someone can move, not the recorded sha
    ],
)
async def test_a_rollback_does_not_restart_what_the_record_names_unless_it_is_a_version(
    kit: Kit, target: str | None, commit: str | None
) -> None:
    stopped = kit.stopped_v1().model_copy(
        update={k: v for k, v in (("target", target), ("commit", commit)) if v is not None}
    )
    revision = await kit.write(None, stopped)

    message = await refusal(kit.promoter.rollback(kit.component))

    assert message.startswith("refusing to restart"), message
    assert "tampered" in message
    current = await kit.store.get(kit.component)
    assert current is not None
    assert current.revision == revision, "the record is unchanged: nothing was started"
    assert not any((kit.backend.root / "worktrees").glob(f"{kit.component}-*"))
