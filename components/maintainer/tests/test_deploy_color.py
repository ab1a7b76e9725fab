"""A maintainer deployed blue/green itself: it consumes events only while its color serves.

Before, the maintainer built its event consumers by hand and started them at once, so a
maintainer started with a deploy color (the new version, not yet promoted) handled
production events beside the live one. It now subscribes through ``Service.subscribe``,
which follows the deploy role.
"""

from __future__ import annotations

import asyncio

from maintainer_helpers import Decisions, MakeSample, consumer_exists

from agentbus.framework import Bus
from agentbus.framework.deploy import DeploymentRecord, DeploymentStore
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED, DependencyUpdated
from agentbus.maintainer.deployers import PointerDeployer
from agentbus.maintainer.service import Maintainer

UNRELATED = DependencyUpdated(package="numpy", from_version="2.0.0", to_version="2.0.1")
"""A monitored event the sample ignores at once (no flow runs)."""


async def test_a_maintainer_with_a_deploy_color_consumes_only_once_that_color_is_promoted(
    make_sample: MakeSample, start_service: StartService, bus: Bus
) -> None:
    component = make_sample()
    name = component.name
    deployed_as = f"maintainer-{name}"  # the maintainer's own deployment, not the sample's
    decisions = await Decisions.watch(bus, name)
    maintainer = await start_service(
        Maintainer,
        settings={"deploy_color": "green", "deploy_component": deployed_as},
        component_dir=component,
        deployer=PointerDeployer(bus),
    )
    durable = f"{maintainer.name}__dependency_updated"

    await bus.publish(DEPENDENCY_UPDATED, UNRELATED)
    await asyncio.sleep(1.0)
    assert decisions.seen == [], "green consumed before it was promoted"
    assert not await consumer_exists(bus, durable)

    store = await DeploymentStore.open(bus.js)
    green = DeploymentRecord(version=maintainer.version, commit="c" * 40, color="green")
    await store.put(deployed_as, green, revision=None)
    await eventually(lambda: consumer_exists(bus, durable), what="green joined (its consumer)")

    await bus.publish(DEPENDENCY_UPDATED, UNRELATED)
    ignored = await decisions.wait_for("ignored")
    assert (ignored.action, ignored.rule) == ("ignore", "builtin:unrelated")
