"""Nothing is lost: escalations and events survive restarts of the maintainer (a real process,
driven through the CLI) and of NATS (file-backed JetStream)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from maintainer_helpers import (
    BREAKING,
    Decisions,
    MakeSample,
    consumer_exists,
    escalation_in,
    wait_until,
)

from agentbus.framework import Bus, EmbeddedNats, Settings
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED, DependencyUpdated
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED
from agentbus.interfaces.metadata import Source
from agentbus.maintainer.deployers import current_deployment
from agentbus.maintainer.escalations import EscalationStore
from agentbus.maintainer.service import Maintainer

AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def cli(url: str, *args: str) -> str:
    done = subprocess.run(
        [*AGENTBUS, "--nats-url", url, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_process(url: str, component: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*AGENTBUS, "--nats-url", url, "maintainer", "--component", str(component)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AGENTBUS_LOG_LEVEL": "info"},
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


@pytest.mark.slow
async def test_an_escalation_survives_a_maintainer_restart_and_is_approved_afterwards(
    make_sample: MakeSample, bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    component = make_sample()
    name = component.name
    log = tmp_path / "maintainer.log"
    decisions = await Decisions.watch(bus, name)
    process = start_process(nats_url, component, log)
    try:
        durable = f"maintainer-{name}__interface_changed"
        await wait_until(lambda: consumer_exists(bus, durable), timeout=30)

        await bus.publish(INTERFACE_CHANGED, BREAKING)
        escalation = await wait_until(lambda: escalation_in(bus, name, "open"), timeout=30)
        assert escalation.resume == "code-change"
        assert escalation.target == "demo-operator"
        stop_process(process)

        # While the maintainer is down: the approval, and a new event.
        listed = cli(nats_url, "escalations", "list", "--component", name, "--json")
        assert json.loads(listed.splitlines()[0])["id"] == escalation.id
        approved = cli(
            nats_url, "escalations", "approve", escalation.id[:8], "--by", "ada", "--wait", "0"
        )
        assert f"escalation {escalation.id} of {name}: approved" in approved
        await bus.publish(
            DEPENDENCY_UPDATED,
            DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="1.0.1"),
        )

        process = start_process(nats_url, component, log)
        # nothing could be done without a model: failed, with the reason, never "done"
        failed = await wait_until(lambda: escalation_in(bus, name, "failed"), timeout=60)
        assert failed.resolved_by == "ada"
        assert "no model is configured" in failed.note
        assert "a person must change the code" in failed.note
        await decisions.wait_for("promoted", timeout=60)  # the event sent while it was down
    finally:
        if process.poll() is None:
            stop_process(process)

    shown = json.loads(cli(nats_url, "escalations", "show", escalation.id, "--json"))
    assert shown["status"] == "failed"
    records = [
        json.loads(line)
        for line in cli(nats_url, "decisions", "--component", name, "--json").splitlines()
    ]
    outcomes = [r["outcome"] for r in records]
    assert outcomes[:1] == ["escalated"]
    assert "needs-human" in outcomes
    assert "promoted" in outcomes
    table = cli(nats_url, "decisions", "--component", name)
    assert "builtin:unrelated" not in table
    assert "breaking change of an interface" in table


@pytest.mark.slow
async def test_escalations_and_approvals_survive_a_nats_restart(
    make_sample: MakeSample, tmp_path: Path
) -> None:
    component = make_sample()
    name = component.name
    server = EmbeddedNats(tmp_path / "nats").start()
    settings = Settings(nats_url=server.url, data_dir=tmp_path / "agentbus", shutdown_grace=5.0)
    maintainer = Maintainer(settings, component_dir=component)
    try:
        await maintainer.start()
        async with Bus(settings, Source("test", "pytest")) as client:
            await client.publish(INTERFACE_CHANGED, BREAKING)
            escalation = await wait_until(lambda: escalation_in(client, name, "open"))

        server.stop()
        server.start()

        async with Bus(settings, Source("test", "pytest")) as client:
            store = EscalationStore(client)
            kept, _ = await store.find(escalation.id)
            assert kept.status == "open"
            await store.decide(escalation.id, "approve", by="ada", note="")
            failed = await wait_until(lambda: escalation_in(client, name, "failed"), timeout=60)
            assert "a person must change the code" in failed.note
            assert await current_deployment(client, name) is None
    finally:
        await maintainer.stop()
        server.stop()
