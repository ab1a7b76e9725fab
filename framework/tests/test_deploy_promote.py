"""Blue/green promotion end to end: real NATS, a real git repository, real service processes.

Each test deploys the tiny service of ``deploy_helpers`` from git worktrees at
tagged commits, through the local backend, while a steady load runs against
the production subject.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from deploy_helpers import (
    TARGET,
    Answer,
    Ask,
    Load,
    ask_interface,
    deploy_backend,
    instances_of,
    make_repo,
    smoke,
)
from framework_helpers import unique

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.deploy import DeploymentStore
from agentbus.framework.deploy.backends import LocalBackend, Release
from agentbus.framework.deploy.policy import Outcome, PromotionPolicy
from agentbus.framework.deploy.promote import Promoter
from agentbus.framework.deploy.state import DeploymentRecord
from agentbus.framework.supervisor import ClusterFile, NatsSection, Supervisor
from agentbus.framework.testing import eventually
from agentbus.interfaces.message import Interface

pytestmark = pytest.mark.slow

POLICY = PromotionPolicy(
    health_timeout=30.0,
    switch_timeout=10.0,
    bake_seconds=1.5,
    check_interval=0.2,
    min_requests=20,
    stop_grace=5.0,
)


@dataclass
class Kit:
    component: str
    interface: Interface[Ask, Answer]
    backend: LocalBackend
    promoter: Promoter
    store: DeploymentStore
    worktrees: Path

    def release(self, tag: str, version: str) -> Release:
        return Release(self.component, TARGET, tag, version=version)

    async def record(self) -> DeploymentRecord:
        current = await self.store.get(self.component)
        assert current is not None
        return current.record


@pytest.fixture
async def kit(settings: Settings, bus: Bus, tmp_path: Path) -> AsyncIterator[Kit]:
    repo = make_repo(tmp_path / "repo")
    component = unique("svc")
    interface = ask_interface(f"test.deploy{uuid.uuid4().hex[:10]}")
    assert settings.nats_url is not None
    backend = deploy_backend(
        repo, tmp_path / "agentbus", settings.nats_url, interface.name, component, grace=5
    )
    promoter = Promoter(bus, backend, POLICY)
    store = await DeploymentStore.open(bus.js)
    try:
        yield Kit(component, interface, backend, promoter, store, backend.root / "worktrees")
    finally:
        await backend.stop_started(grace=1.0)


def processes_of(component: str, color: str) -> list[int]:
    """Live pids of the instances of ``component`` under ``color``."""
    return instances_of(f"{component}-{color}")


@pytest.mark.parametrize(("tag", "why"), [("smoke-fails", "smoke"), ("crash", "exited")])
async def test_a_failing_new_version_is_never_promoted(
    kit: Kit, bus: Bus, tag: str, why: str
) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    before = await kit.store.get(kit.component)

    result = await kit.promoter.promote(kit.release(tag, "bad"), smoke(kit.interface))

    assert result.outcome is Outcome.REJECTED
    assert why in result.reason
    if why == "exited":  # the message says where to look
        assert str(kit.backend.root / "logs") in result.reason, result.reason
    assert await kit.store.get(kit.component) == before, "the record was not touched"
    reply = await bus.request(kit.interface, Ask(n=1), timeout=5)
    assert reply.version == "1", "blue still serves"
    assert processes_of(kit.component, "blue"), "blue still runs"
    assert not processes_of(kit.component, "green"), "green was torn down"
    assert [p.name for p in kit.worktrees.iterdir()] == [
        f"{kit.component}-blue-{first.commit[:12]}"
    ], "green's worktree was removed"


async def test_promotion_and_rollback_under_steady_load_lose_no_request(kit: Kit, bus: Bus) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    load = Load(bus, kit.interface)
    load.start()
    try:
        await eventually(lambda: load.versions["1"] > 50, timeout=10, what="load on v1")

        promoted = await kit.promoter.promote(kit.release("v2", "2"), smoke(kit.interface))

        assert promoted.outcome is Outcome.PROMOTED, promoted.reason
        await eventually(lambda: load.versions["2"] > 50, timeout=10, what="load on v2")
        assert not processes_of(kit.component, "blue"), "blue stopped after the bake window"

        record = await kit.promoter.rollback(kit.component)  # restarts v1, then flips back

        assert (record.version, record.serving_colors()) == ("1", {record.color})
        mark = len(load.order)
        await eventually(
            lambda: load.order[mark:].count("1") > 50, timeout=10, what="load back on v1"
        )
    finally:
        await load.stop()

    assert not load.lost, f"{len(load.lost)} of {load.total} lost, first: {load.lost[0]}"
    assert not load.errors, load.errors
    runs = [v for i, v in enumerate(load.order) if i == 0 or load.order[i - 1] != v]
    assert (runs[0], "2" in runs, runs[-1]) == ("1", True, "1"), "served by v1, then v2, then v1"
    assert set(load.order[-20:]) == {"1"}
    assert not processes_of(kit.component, "green"), "v2 stopped after the rollback"


async def test_an_error_spike_after_promotion_rolls_back_automatically(kit: Kit, bus: Bus) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    load = Load(bus, kit.interface)
    load.start()
    try:
        await eventually(lambda: load.versions["1"] > 50, timeout=10, what="load on v1")

        # A long bake window: the rollback comes as soon as 20 requests were judged, and a
        # busy machine must not let the window end before that.
        promoter = Promoter(bus, kit.backend, replace(POLICY, bake_seconds=30.0))
        result = await promoter.promote(kit.release("spike", "5"), smoke(kit.interface))

        assert result.outcome is Outcome.ROLLED_BACK, result.reason
        assert "error rate" in result.reason
        assert result.observed.rate > 0.5
        assert result.baseline.rate == 0.0
        mark = len(load.order)
        await eventually(lambda: load.order[mark:].count("1") > 50, timeout=10, what="v1 again")
    finally:
        await load.stop()

    record = await kit.record()
    assert (record.color, record.version, record.serving_colors()) == ("blue", "1", {"blue"})
    assert record.previous is not None
    assert (record.previous.version, record.previous.runtime) == ("5", None)
    assert load.errors["internal"] > 0, "the spike did reach production"
    assert set(load.errors) == {"internal"}
    assert not load.lost, f"{len(load.lost)} of {load.total} lost, first: {load.lost[0]}"
    assert set(load.order[-20:]) == {"1"}
    assert not processes_of(kit.component, "green"), "the spiking version was stopped"


async def test_a_rollback_during_the_bake_window_flips_to_the_running_blue(
    kit: Kit, bus: Bus
) -> None:
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    blue_pids = processes_of(kit.component, "blue")
    load = Load(bus, kit.interface)
    load.start()
    try:
        baking = Promoter(bus, kit.backend, replace(POLICY, bake_seconds=60.0))
        promotion = asyncio.create_task(
            baking.promote(kit.release("v2", "2"), smoke(kit.interface))
        )

        async def in_bake() -> bool:
            current = await kit.store.get(kit.component)
            return current is not None and current.record.serving == ("green",)

        await eventually(in_bake, timeout=30, what="v2 promoted and baking")
        await eventually(lambda: load.versions["2"] > 20, timeout=10, what="load on v2")

        record = await kit.promoter.rollback(kit.component)

        result = await asyncio.wait_for(promotion, 10)
        mark = len(load.order)
        await eventually(lambda: load.order[mark:].count("1") > 50, timeout=10, what="v1 again")
    finally:
        await load.stop()

    assert result.outcome is Outcome.SUPERSEDED
    assert (record.version, record.color, record.serving_colors()) == ("1", "blue", {"blue"})
    assert processes_of(kit.component, "blue") == blue_pids, "blue was reused, not restarted"
    assert not processes_of(kit.component, "green")
    assert not load.lost, f"{len(load.lost)} of {load.total} lost, first: {load.lost[0]}"
    assert not load.errors, load.errors


async def test_agentbus_up_stops_the_versions_deployed_under_its_data_folder(
    kit: Kit, settings: Settings
) -> None:
    """A maintainer under ``agentbus up`` deploys with the local backend: those processes
    outlive the maintainer (blue/green), but not the cluster whose NATS they need."""
    first = await kit.promoter.promote(kit.release("v1", "1"), smoke(kit.interface))
    assert first.outcome is Outcome.PROMOTED, first.reason
    assert processes_of(kit.component, "blue")
    assert settings.nats_url is not None
    lines: list[str] = []
    cluster = ClusterFile(nats=NatsSection(url=settings.nats_url))
    supervisor = Supervisor(cluster, kit.backend.data_dir, log=lines.append, grace=5.0)
    supervisor.start()

    await asyncio.to_thread(supervisor.stop)

    assert not processes_of(kit.component, "blue")
    stopped = [line for line in lines if line.startswith("stopped deployed instance")]
    assert stopped == [f"stopped deployed instance {kit.component}-blue-{first.commit[:12]}-0"]
