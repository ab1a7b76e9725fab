"""Each flow end to end: a maintainer on a real nats-server, a real git repository, real test
runs of the sample component on the old and the new version."""

from __future__ import annotations

import json

import git
from maintainer_helpers import (
    Decisions,
    MakeSample,
    StartMaintainer,
    escalation_in,
    head,
    wait_until,
)

from agentbus.framework import Bus
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED, DependencyUpdated
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.deployers import PointerDeployer, current_deployment
from agentbus.maintainer.escalations import EscalationStore


def dependency(to: str, frm: str = "1.0.0") -> DependencyUpdated:
    return DependencyUpdated(package="greetlib", from_version=frm, to_version=to)


async def test_a_patch_update_is_tested_on_both_versions_and_promoted(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    name = component.name
    base = head(component)
    await PointerDeployer(bus).deploy(name, base, "1.0.0")  # the running version: blue
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, dependency("1.0.1"))

    first = await decisions.wait_for("acting")
    assert (first.action, first.rule) == ("act", "patch or minor update of a dependency")
    promoted = await decisions.wait_for("promoted")
    matrix = promoted.details["report"]["matrix"]  # type: ignore[index]
    assert matrix["ok"] is True
    assert matrix["pass_to_pass"] == 3
    assert all(t == {"old": "passed", "new": "passed"} for t in matrix["tests"].values())

    deployment = await current_deployment(bus, name)
    assert deployment is not None
    assert (deployment.version, deployment.color) == ("1.0.1", "green")
    previous = deployment.previous
    assert previous is not None
    assert (previous.version, previous.commit, previous.color) == ("1.0.0", base, "blue")
    with git.Repo(component.parent) as repo:
        commit = repo.commit(deployment.commit)
        assert "Decision: act (rule: patch or minor update of a dependency)" in commit.message
        assert "PASS_TO_PASS 3, broken 0" in commit.message
        assert commit.parents[0].hexsha == base
        assert not repo.is_dirty(untracked_files=True)
    # fast-forwarded: the component now declares and locks the new version
    assert head(component) == deployment.commit
    assert '"greetlib==1.0.1"' in (component / "pyproject.toml").read_text()
    assert "greetlib==1.0.1" in (component / "requirements.lock").read_text()
    assert ComponentContext.load(component).version == "1.0.1"


async def test_a_failing_new_version_is_never_promoted(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    name = component.name
    base = head(component)
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, dependency("1.0.2"))  # greets "Hi Ada"

    escalated = await decisions.wait_for("escalated")
    assert escalated.action == "escalate"
    assert "broke tests that passed before" in escalated.reason
    assert "promoted" not in decisions.outcomes()
    assert await current_deployment(bus, name) is None
    escalation = await escalation_in(bus, name, "open")
    assert escalation is not None
    assert escalation.resume == "code-change"
    assert escalation.report["matrix"]["broken"]  # type: ignore[index]
    assert head(component) == base  # the checked-out branch did not move
    with git.Repo(component.parent) as repo:
        assert "FAILED" in repo.commit(str(escalation.report["commit"])).message
    assert ComponentContext.load(component).version == "1.0.0"


async def test_a_major_update_escalates_and_approval_resumes_the_update(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    name = component.name
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, dependency("2.0.0"))
    escalated = await decisions.wait_for("escalated")
    assert escalated.rule == "major update of a dependency"
    escalation = await wait_until(lambda: escalation_in(bus, name, "open"))
    assert escalation.resume == "update"
    assert "promoted" not in decisions.outcomes()

    await EscalationStore(bus).decide(escalation.id, "approve", by="ada", note="")

    promoted = await decisions.wait_for("promoted")
    assert promoted.reason.startswith("approved by ada")
    done = await wait_until(lambda: escalation_in(bus, name, "done"))
    assert done.note.startswith("promoted 1.0.1")
    deployment = await current_deployment(bus, name)
    assert deployment is not None
    assert "greetlib==2.0.0" in (component / "requirements.lock").read_text()


async def test_an_unreadable_escalation_record_does_not_stop_approvals(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    """The escalations bucket is input: garbage under the component's keys is skipped by the
    watch and by listings, and an approval still resumes the work."""
    component = make_sample()
    name = component.name
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)
    kv = await EscalationStore(bus).kv()
    await kv.put(f"{name}.garbage", b'{"not": "an escalation"}')

    await bus.publish(DEPENDENCY_UPDATED, dependency("2.0.0"))
    escalation = await wait_until(lambda: escalation_in(bus, name, "open"))
    assert escalation is not None
    await kv.put(f"{name}.garbage2", b"\xff not json")
    await EscalationStore(bus).decide(escalation.id, "approve", by="ada", note="")

    promoted = await decisions.wait_for("promoted")
    assert promoted.reason.startswith("approved by ada")


async def test_a_compatible_interface_change_moves_the_pin_and_promotes(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    name = component.name
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)

    await bus.publish(
        INTERFACE_CHANGED,
        InterfaceChanged(
            interface="model.catalog",
            old_version="1.0.0",
            new_version="1.1.0",
            compatibility="compatible",
            reasons=["field_added: /properties/note"],
        ),
    )

    promoted = await decisions.wait_for("promoted")
    assert promoted.rule == "compatible change of an interface we use or serve"
    context = json.loads((component / "context" / "context.json").read_text())
    assert context["interfaces"]["consumes"] == [
        {"name": "model.catalog", "version": ">=1.1.0,<2.0.0"}
    ]
    assert context["version"] == "1.0.1"


async def test_unrelated_events_are_ignored_and_recorded(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    decisions = await Decisions.watch(bus, component.name)
    await start_maintainer(component)

    await bus.publish(
        DEPENDENCY_UPDATED,
        DependencyUpdated(package="numpy", from_version="2.0.0", to_version="2.0.1"),
    )
    await bus.publish(
        INTERFACE_CHANGED,
        InterfaceChanged(
            interface="tools.execute",
            old_version="1.0.0",
            new_version="2.0.0",
            compatibility="breaking",
        ),
    )
    await decisions.wait_count(2)
    assert {(d.action, d.rule) for d in decisions.seen} == {("ignore", "builtin:unrelated")}
    assert await escalation_in(bus, component.name, "open") is None


async def test_propose_autonomy_asks_before_promoting(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample(autonomy="propose")
    name = component.name
    decisions = await Decisions.watch(bus, name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, dependency("1.1.0"))
    proposed = await decisions.wait_for("proposed")
    assert proposed.details["report"]["matrix"]["ok"] is True  # type: ignore[index]
    assert await current_deployment(bus, name) is None
    escalation = await wait_until(lambda: escalation_in(bus, name, "open"))
    assert escalation.resume == "promote"

    await EscalationStore(bus).decide(escalation.id, "approve", by="ada", note="")
    await decisions.wait_for("promoted")
    deployment = await current_deployment(bus, name)
    assert deployment is not None
    assert deployment.commit == escalation.report["commit"]


async def test_observe_autonomy_only_records(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample(autonomy="observe")
    decisions = await Decisions.watch(bus, component.name)
    await start_maintainer(component)
    await bus.publish(DEPENDENCY_UPDATED, dependency("1.0.1"))
    observed = await decisions.wait_for("observed")
    assert observed.action == "act"
    with git.Repo(component.parent) as repo:
        assert len(repo.heads) == 1  # no branch was made


async def test_within_the_cooldown_a_passing_change_waits_for_approval(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus
) -> None:
    component = make_sample()
    path = component / "context" / "agent-config.json"
    config = json.loads(path.read_text())
    config["limits"]["cooldown_seconds"] = 3600
    path.write_text(json.dumps(config, indent=2))
    await PointerDeployer(bus).deploy(component.name, head(component), "1.0.0")  # just now
    decisions = await Decisions.watch(bus, component.name)
    await start_maintainer(component)

    await bus.publish(DEPENDENCY_UPDATED, dependency("1.0.1"))

    proposed = await decisions.wait_for("proposed")
    assert "cooldown 3600 s" in proposed.reason
    deployment = await current_deployment(bus, component.name)
    assert deployment is not None
    assert deployment.version == "1.0.0"
