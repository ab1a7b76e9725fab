"""The CLI plugins as a person uses them: processes against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from maintainer_helpers import BREAKING, MakeSample, StartMaintainer, escalation_in, wait_until

from agentbus.framework import Bus, declare_all
from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    Escalation,
    MaintainerDecision,
)
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED
from agentbus.interfaces.metadata import new_id
from agentbus.maintainer.audit import now, record
from agentbus.maintainer.deployers import PointerDeployer
from agentbus.maintainer.escalations import EscalationStore
from agentbus.maintainer.testing import SAMPLE

AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def agentbus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTBUS, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_check_validates_a_context(tmp_path: Path) -> None:
    done = agentbus("maintainer", "--component", str(SAMPLE), "--check")
    assert (done.returncode, done.stdout.strip()) == (0, "sample-greeter 1.0.0: context/ is valid")
    broken = agentbus("maintainer", "--component", str(tmp_path), "--check")
    assert broken.returncode == 2
    assert "context.json is missing: every component needs context/context.json" in broken.stderr


async def test_list_show_reject_and_a_refused_approval(bus: Bus, nats_url: str) -> None:
    component = f"cli-{new_id()[:6]}"
    escalation = await EscalationStore(bus).create(
        Escalation(
            id=new_id()[:12],
            component=component,
            reason="a breaking change of model.catalog",
            rule="breaking change",
            event="interface.changed",
            payload={"interface": "model.catalog"},
            resume="code-change",
            created_at=now(),
        )
    )
    url = ("--nats-url", nats_url)
    listed = agentbus(*url, "escalations", "list", "--component", component, "--status", "open")
    assert escalation.id in listed.stdout
    assert "a breaking change of model.catalog" in listed.stdout
    shown = agentbus(*url, "escalations", "show", escalation.id, "--json")
    assert json.loads(shown.stdout)["payload"] == {"interface": "model.catalog"}

    rejected = agentbus(*url, "escalations", "reject", escalation.id, "--by", "grace")
    assert rejected.stdout.strip() == f"escalation {escalation.id} of {component}: rejected"
    again = agentbus(*url, "escalations", "approve", escalation.id)
    assert again.returncode == 2
    assert f"escalation {escalation.id} is rejected; only open can become approved" in again.stderr
    unknown = agentbus(*url, "escalations", "show", "no-such-id")
    assert unknown.returncode == 2
    assert "no escalation id is or starts with 'no-such-id'" in unknown.stderr
    kept, _ = await EscalationStore(bus).find(escalation.id)
    assert (kept.status, kept.resolved_by) == ("rejected", "grace")
    assert (
        agentbus(
            *url, "escalations", "list", "--component", component, "--status", "open"
        ).stdout.strip()
        == "no escalations"
    )


async def test_decisions_lists_and_follows(bus: Bus, nats_url: str) -> None:
    component = f"cli-{new_id()[:6]}"

    def decision(summary: str) -> MaintainerDecision:
        return MaintainerDecision(
            id=new_id(),
            component=component,
            event="dependency.updated",
            event_id=new_id(),
            summary=summary,
            action="ignore",
            reason="the event does not concern this component",
            rule="builtin:unrelated",
            outcome="ignored",
            at=now(),
        )

    await declare_all(bus.js)  # what any service does at start
    await record(bus, decision("numpy 2.0.0 -> 2.0.1 (patch)"))
    listed = agentbus("--nats-url", nats_url, "decisions", "--component", component)
    assert "numpy 2.0.0 -> 2.0.1 (patch)" in listed.stdout
    assert "builtin:unrelated" in listed.stdout

    follow = await asyncio.create_subprocess_exec(
        *AGENTBUS, "--nats-url", nats_url, "decisions", "--component", component, "--follow",
        "--json", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        for _ in range(100):  # until the subscription is in place
            await record(bus, decision("httpx 0.27.0 -> 0.27.1 (patch)"))
            try:
                line = await asyncio.wait_for(follow.stdout.readline(), 0.2)
            except TimeoutError:
                continue
            assert json.loads(line)["summary"] == "httpx 0.27.0 -> 0.27.1 (patch)"
            break
        else:
            raise AssertionError("--follow printed nothing")
    finally:
        follow.terminate()
        await follow.wait()


async def test_a_pointer_deployment_is_what_deploy_status_shows(bus: Bus, nats_url: str) -> None:
    component = f"cli-{new_id()[:6]}"
    deployer = PointerDeployer(bus)
    await deployer.deploy(component, "a" * 40, "1.0.0")
    second = await deployer.deploy(component, "b" * 40, "1.0.1")
    assert (second.color, second.previous) == (
        "green",
        {"version": "1.0.0", "commit": "a" * 40, "color": "blue"},
    )

    shown = agentbus("--nats-url", nats_url, "deploy", "status", component, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert (record["version"], record["commit"], record["color"]) == ("1.0.1", "b" * 40, "green")
    assert (record["previous"]["version"], record["previous"]["color"]) == ("1.0.0", "blue")


async def test_escalations_by_a_unique_prefix(bus: Bus, nats_url: str) -> None:
    component, base = f"cli-{new_id()[:6]}", new_id()[:10]
    for suffix in ("a1", "b2"):
        await EscalationStore(bus).create(
            Escalation(
                id=base + suffix,
                component=component,
                reason="why",
                rule="breaking change",
                event="interface.changed",
                payload={},
                resume="code-change",
                created_at=now(),
            )
        )
    url = ("--nats-url", nats_url)
    ambiguous = agentbus(*url, "escalations", "show", base)
    assert ambiguous.returncode == 2
    assert f"{base}a1" in ambiguous.stderr
    assert f"{base}b2" in ambiguous.stderr
    assert "ambiguous" in ambiguous.stderr
    shown = agentbus(*url, "escalations", "show", base + "b", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == base + "b2"


async def approve_and_wait(nats_url: str, escalation_id: str, wait: str) -> tuple[int, str]:
    """``escalations approve --wait`` in a subprocess, without blocking this test's loop (the
    maintainer under test runs in it)."""
    process = await asyncio.create_subprocess_exec(
        *AGENTBUS, "--nats-url", nats_url, "escalations", "approve", escalation_id,
        "--by", "ada", "--wait", wait,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), float(wait) + 60)
    assert process.returncode is not None
    return process.returncode, " ".join(out.decode().split())


async def test_approve_wait_says_when_no_maintainer_took_it_up(bus: Bus, nats_url: str) -> None:
    component = f"cli-{new_id()[:6]}"
    escalation = await EscalationStore(bus).create(
        Escalation(
            id=new_id()[:12],
            component=component,
            reason="a breaking change",
            rule="breaking change",
            event="interface.changed",
            payload={},
            resume="code-change",
            created_at=now(),
        )
    )
    code, out = await approve_and_wait(nats_url, escalation.id, "0.5")
    assert code == 3, out
    assert f"escalation {escalation.id} of {component}: approved, but no maintainer" in out
    assert "agentbus maintainer --component" in out


async def test_approve_wait_reports_a_failure_with_the_maintainers_reason(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, nats_url: str
) -> None:
    component = make_sample()
    await start_maintainer(component)
    await bus.publish(INTERFACE_CHANGED, BREAKING)
    escalation = await wait_until(lambda: escalation_in(bus, component.name, "open"))

    code, out = await approve_and_wait(nats_url, escalation.id[:8], "60")

    # no model for the code change: nothing was done, and the answer says so (not "done")
    assert code == 1, out
    assert f"escalation {escalation.id} of {component.name}: failed:" in out
    assert "no model is configured" in out


async def test_approve_wait_reports_done_when_the_approved_update_was_promoted(
    make_sample: MakeSample, start_maintainer: StartMaintainer, bus: Bus, nats_url: str
) -> None:
    component = make_sample()
    await start_maintainer(component)
    await bus.publish(
        DEPENDENCY_UPDATED,
        DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="2.0.0"),
    )
    escalation = await wait_until(lambda: escalation_in(bus, component.name, "open"))

    code, out = await approve_and_wait(nats_url, escalation.id, "120")

    assert code == 0, out
    assert f"escalation {escalation.id} of {component.name}: done: promoted 1.0.1" in out
