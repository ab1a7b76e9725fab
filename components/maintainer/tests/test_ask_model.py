"""``ask-model``: the gateway decides with the component's context, or the maintainer escalates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maintainer_helpers import Decisions, MakeSample, StartMaintainer, escalation_in

from agentbus.framework import Bus, Settings
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED, DependencyUpdated
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.model_gateway.testing import FakeModelGateway

PATCH = DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="1.0.1")


def without_rules(component: Path) -> None:
    """Every related event falls through to the default action, ask-model."""
    path = component / "context" / "agent-config.json"
    config = json.loads(path.read_text())
    config["escalation_rules"] = []
    path.write_text(json.dumps(config, indent=2))


async def gateway(settings: Settings, **options: Any) -> FakeModelGateway:
    fake = FakeModelGateway(settings, **options)
    await fake.start()
    return fake


async def test_no_gateway_means_escalate(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    without_rules(component)
    decisions = await Decisions.watch(bus, component.name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, PATCH)

    decision = await decisions.wait_for("escalated")
    assert (decision.action, decision.rule) == ("escalate", "model")
    assert decision.reason.startswith("no model answered")
    escalation = await escalation_in(bus, component.name, "open")
    assert escalation is not None
    assert escalation.resume == "update"


async def test_not_configured_means_escalate(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, settings: Settings
) -> None:
    component = make_sample()
    without_rules(component)
    fake = await gateway(settings, not_configured=True)
    try:
        decisions = await Decisions.watch(bus, component.name)
        await start_maintainer(component)
        await bus.publish(DEPENDENCY_UPDATED, PATCH)
        decision = await decisions.wait_for("escalated")
        assert decision.reason.startswith("no model is configured")
    finally:
        await fake.stop()


async def test_the_model_decides_with_the_component_context(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, settings: Settings
) -> None:
    component = make_sample()
    without_rules(component)
    fake = await gateway(settings, answer='Sure. {"action": "act", "reason": "a safe patch"}')
    try:
        decisions = await Decisions.watch(bus, component.name)
        await start_maintainer(component)
        await bus.publish(DEPENDENCY_UPDATED, PATCH)
        decision = await decisions.wait_for("acting")
        assert decision.rule == "model"
        assert decision.reason == "a safe patch (model smart/fake-1)"
        await decisions.wait_for("promoted")
    finally:
        await fake.stop()
    prompt = fake.requests[0].messages[1].content
    assert isinstance(prompt, str)
    assert component.name in prompt
    assert "greetlib" in prompt


async def test_an_unusable_answer_or_a_breaking_change_escalates(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, settings: Settings
) -> None:
    component = make_sample()
    without_rules(component)
    fake = await gateway(settings, answer="I would rather not say")
    try:
        decisions = await Decisions.watch(bus, component.name)
        maintainer = await start_maintainer(component)
        await bus.publish(DEPENDENCY_UPDATED, PATCH)
        decision = await decisions.wait_for("escalated")
        assert "not a decision" in decision.reason

        fake.answer = '{"action": "act", "reason": "looks fine"}'
        await bus.publish(
            INTERFACE_CHANGED,
            InterfaceChanged(
                interface="sample.greet",
                old_version="1.0.0",
                new_version="2.0.0",
                compatibility="breaking",
            ),
        )
        await decisions.wait_count(2)
        breaking = decisions.seen[-1]
        assert (breaking.action, breaking.rule) == ("escalate", "builtin:breaking")
        assert maintainer.component.version == "1.0.0"
    finally:
        await fake.stop()
