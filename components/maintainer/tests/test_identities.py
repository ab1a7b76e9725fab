"""A maintainer under least privilege: the grants ``agentbus up`` derives for a cluster file.

The server admits only the identities of a cluster file with one maintainer: the
maintainer runs with its derived grants (its durables, its component's escalations and
deployments key); it can mark its own escalation ``approved`` but cannot write the
operator's decision, so such an escalation is never resumed, while one the operator
decides is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from maintainer_helpers import BREAKING, MakeSample, escalation_in, wait_until

from agentbus.framework import DEPLOYMENTS_BUCKET, Bus, EmbeddedNats, key_value
from agentbus.framework.auth import OPERATOR, AuthFolder
from agentbus.framework.auth.cluster import cluster_identities
from agentbus.framework.supervisor import ClusterFile
from agentbus.framework.testing import Intruder, settings_as
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED
from agentbus.interfaces.metadata import Source
from agentbus.maintainer.escalations import (
    ESCALATIONS_BUCKET,
    EscalationStore,
    TransitionRefused,
    decision_key,
)
from agentbus.maintainer.service import Maintainer


@pytest.fixture
async def cluster(make_sample: MakeSample, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    component = make_sample()
    path = tmp_path / "agentbus.toml"
    path.write_text(
        f'[[service]]\nname = "maintainer-{component.name}"\n'
        'target = "agentbus.maintainer.service:Maintainer"\n'
        f'env = {{ AGENTBUS_MAINTAINER_COMPONENT = "{component}" }}\n',
        encoding="utf-8",
    )
    folder = AuthFolder(tmp_path / "auth")
    folder.write(cluster_identities(ClusterFile.load(path), REGISTRY))
    with EmbeddedNats(tmp_path / "nats", auth=folder.server_config) as server:

        def settings(identity: str) -> Any:
            return settings_as(folder, server.url, identity, tmp_path, jetstream_storage="memory")

        name = f"maintainer-{component.name}"
        maintainer = Maintainer(settings(name), component_dir=component)
        await maintainer.start()
        try:
            async with (
                Bus(settings(OPERATOR), Source("cli", "t")) as operator,
                Bus(settings(name), Source(name, "thief")) as own,
            ):
                yield {
                    "component": component.name,
                    "operator": operator,
                    "maintainer": own,
                    "url": server.url,
                    "seed": folder.seed_file(name),
                }
        finally:
            await maintainer.stop()


async def test_a_maintainer_cannot_decide_or_touch_other_components(
    cluster: dict[str, Any],
) -> None:
    operator: Bus = cluster["operator"]
    own: Bus = cluster["maintainer"]
    component = cluster["component"]
    await operator.publish(INTERFACE_CHANGED, BREAKING)
    escalation = await wait_until(lambda: escalation_in(operator, component, "open"))

    intruder = await Intruder.connect(cluster["url"], cluster["seed"])
    try:
        for subject in (
            f"$KV.{ESCALATIONS_BUCKET}.{decision_key(component, escalation.id)}",
            f"$KV.{ESCALATIONS_BUCKET}.model-gateway.{escalation.id}",
            f"$KV.{DEPLOYMENTS_BUCKET}.model-gateway",
            f"$JS.API.STREAM.PURGE.KV_{ESCALATIONS_BUCKET}",
        ):
            await intruder.publish(subject, json.dumps({"decision": "approve"}).encode())
            await intruder.refused(subject)
    finally:
        await intruder.close()
    assert await EscalationStore(operator).decision_of(escalation) is None

    # Its own record it may write, approved included; without the operator's decision the
    # maintainer does not resume it.
    await EscalationStore(own).transition(escalation.id, ["open"], "approved")
    stays = await wait_until(lambda: escalation_in(operator, component, "approved"))
    assert stays.id == escalation.id
    with pytest.raises(AssertionError, match="waited"):
        await wait_until(
            lambda: escalation_in(operator, component, "done", "failed", "resuming"), timeout=3
        )


async def test_the_operators_decision_is_resumed(cluster: dict[str, Any]) -> None:
    operator: Bus = cluster["operator"]
    component = cluster["component"]
    await operator.publish(INTERFACE_CHANGED, BREAKING)
    escalation = await wait_until(lambda: escalation_in(operator, component, "open"))

    decided = await EscalationStore(operator).decide(escalation.id, "approve", by="ada", note="")

    assert decided.status == "approved"
    # resumed, and failed for a stated reason: this cluster has no model for the code change
    ended = await wait_until(lambda: escalation_in(operator, component, "failed"), timeout=60)
    assert ended.id == escalation.id
    assert "no model is configured" in ended.note


async def test_a_decision_a_stopped_cli_left_is_finished_by_the_same_decision(
    cluster: dict[str, Any],
) -> None:
    operator: Bus = cluster["operator"]
    component = cluster["component"]
    await operator.publish(INTERFACE_CHANGED, BREAKING)
    escalation = await wait_until(lambda: escalation_in(operator, component, "open"))
    kv = await key_value(operator.js, ESCALATIONS_BUCKET)
    left = json.dumps({"decision": "approve", "decided_by": "ada"}).encode()
    await kv.create(decision_key(component, escalation.id), left)  # then the CLI stopped
    store = EscalationStore(operator)

    with pytest.raises(TransitionRefused, match="decided already"):
        await store.decide(escalation.id, "reject", by="bob", note="")
    decided = await store.decide(escalation.id, "approve", by="ada", note="")

    assert decided.status == "approved"
    await wait_until(lambda: escalation_in(operator, component, "failed"), timeout=60)
