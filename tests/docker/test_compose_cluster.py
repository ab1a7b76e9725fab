"""The compose cluster in a real Docker engine: health, the host CLI, maintainers, scaling,
a killed runner, a NATS restart, Prometheus. One cluster for the module, in this order."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from docker_helpers import (
    APP_IMAGE,
    ROOT,
    SERVICES,
    Cluster,
    all_compose_commands,
    docker,
    wait_for,
)

from agentbus.framework import Bus
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_GET,
    WORKFLOWS_START,
    GetRequest,
    RunInfo,
    StartRequest,
)
from agentbus.interfaces.metadata import Source

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]


@pytest.fixture
async def bus(cluster: Cluster) -> AsyncIterator[Bus]:
    async with Bus(cluster.operator_settings(), Source("docker-test", "pytest")) as bus:
        yield bus


async def start_hold(bus: Bus, seconds: float) -> str:
    reply = await bus.request(
        WORKFLOWS_START, StartRequest(workflow="hold", input={"seconds": seconds})
    )
    return reply.run_id


async def get_run(bus: Bus, run_id: str) -> RunInfo:
    return (await bus.request(WORKFLOWS_GET, GetRequest(run_id=run_id), timeout=10)).run


async def wait_done(bus: Bus, run_ids: list[str], timeout: float) -> list[RunInfo]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = await asyncio.gather(*(get_run(bus, run_id) for run_id in run_ids))
        if all(r.status in {"finished", "failed", "cancelled"} for r in runs):
            return list(runs)
        if asyncio.get_running_loop().time() > deadline:
            late = Counter(r.status for r in runs)
            pytest.fail(f"runs not done within {timeout:.0f} s: {dict(late)}")
        await asyncio.sleep(1)


def hostnames(cluster: Cluster, service: str) -> dict[str, str]:
    """Hostname (= the instance id) -> container id, of one service's running containers."""
    return {c["Config"]["Hostname"]: c["Id"] for c in cluster.containers(service)}


def test_the_compose_file_is_valid_for_every_compose_command(docker_engine: None) -> None:
    commands = all_compose_commands()
    assert commands
    for command in commands:
        for profile in ([], ["--profile", "metrics"]):
            result = subprocess.run(
                [*command, "-f", "docker-compose.yml", *profile, "config", "--services"],
                cwd=ROOT,
                env=Cluster().env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, f"{command}: {result.stderr}"
            services = set(result.stdout.split())
            assert services >= {"nats", *SERVICES}, (command, services)
            assert "prometheus" in services or not profile, (command, services)


def test_every_service_is_healthy_and_listed_by_agentbus_status(cluster: Cluster) -> None:
    states = cluster.health()
    checked = {name: state for name, state in states.items() if state != "none"}
    assert len(checked) == 8
    assert set(checked.values()) == {"healthy"}

    found = wait_for(
        lambda: (s := cluster.status()) and {i["name"] for i in s} >= SERVICES and s,
        60,
        "every service in agentbus status",
    )
    by_name = Counter(i["name"] for i in found)
    assert all(by_name[name] == 1 for name in SERVICES), by_name
    # Instance ids are the containers' hostnames: status maps onto `docker ps` one to one.
    containers = {c["Config"]["Hostname"] for c in cluster.containers()}
    assert {i["id"] for i in found} <= containers

    table = cluster.agentbus("status")
    assert table.returncode == 0, table.stderr
    assert "workflow-r" in table.stdout


def test_a_published_event_reaches_every_maintainer(cluster: Cluster) -> None:
    marker = f"docker.test{uuid.uuid4().hex[:8]}"
    event = {
        "interface": marker,
        "old_version": "1.0.0",
        "new_version": "1.1.0",
        "compatibility": "compatible",
        "reasons": ["a field was added"],
    }
    published = cluster.agentbus("publish", "interface.changed", json.dumps(event))
    assert published.returncode == 0, published.stderr
    assert "published to AGENTBUS_EVENTS" in published.stdout

    def decided() -> set[str] | None:
        result = cluster.agentbus("decisions", "--json", "--limit", "200")
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        components = {r["component"] for r in rows if marker in json.dumps(r)}
        return components if len(components) == 4 else None

    components = wait_for(decided, 90, "a decision of each of the 4 maintainers", every=2)
    assert components == {"model-gateway", "tool-executor", "workflow-runner", "maintainer"}


def test_the_cluster_admits_only_its_identities(cluster: Cluster) -> None:
    """Authentication is on with no extra step: an anonymous client is refused, a service's
    key may not serve another's interface, and the operator's key (which auth-init left on
    the host) works."""
    with socket.create_connection(("127.0.0.1", cluster.nats_port), timeout=5) as sock:
        info = json.loads(sock.recv(4096).split(b" ", 1)[1])
        assert info.get("auth_required") is True
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        assert b"Authorization Violation" in sock.recv(4096)
    assert oct(cluster.operator_key.stat().st_mode & 0o777) == "0o600"
    shown = cluster.agentbus("auth", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    [operator] = json.loads(shown.stdout)
    assert operator["name"] == "operator"
    [gateway] = cluster.containers("model-gateway")
    listing = docker("exec", gateway["Id"], "ls", "/run/agentbus")
    assert listing.split() == ["key.nk"], "a service sees its own key only"


def test_make_demo_runs_against_the_cluster_and_deploys_the_sample_as_containers(
    cluster: Cluster,
) -> None:
    env = cluster.operator_env()
    env.update(AGENTBUS_IMAGE=APP_IMAGE)

    done = subprocess.run(
        ["make", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert f"joining the cluster at {cluster.nats_url}" in out
    assert "keys of maintainer-sample-greeter and sample-greeter from" in out
    assert "maintainers in the cluster: maintainer, model-gateway, tool-executor, " in out
    assert "containers of an image built for" in out
    assert f"on {cluster.project}_default" in out
    assert "promoted blue 1.0.0 -> green 1.0.1" in out, "the patch update went live as containers"
    assert "removed the sample's images: agentbus/release:sample-greeter-" in out
    left = docker("ps", "-aq", "--filter", "label=io.agentbus.deploy=sample-greeter")
    assert not left.split(), "the demo stops the containers it deployed"
    assert re.search(r"^\s+tool-executor\s+ignore/ignored", out, re.MULTILINE), out[-3000:]


async def test_scaled_runners_share_sixty_runs(cluster: Cluster, bus: Bus) -> None:
    cluster.compose(
        "up", "-d", "--no-build", "--scale", "workflow-runner=3", "--scale", "model-gateway=2"
    )
    cluster.wait_healthy(8 + 3)
    wait_for(
        lambda: (
            len(cluster.instances("workflow-runner")) == 3
            and len(cluster.instances("model-gateway")) == 2
        ),
        90,
        "3 runners and 2 gateways in agentbus status",
    )
    runners = hostnames(cluster, "workflow-runner")
    assert len(runners) == 3

    # Every run finishes, on the replica that says so; the work spreads over all three. A
    # replica that joined its work queue late takes none of a batch the others absorbed, so
    # batches go on (at most five) until each has finished one: no timing is assumed.
    spread: Counter[str] = Counter()
    for _batch in range(5):
        run_ids = await asyncio.gather(*(start_hold(bus, 1.0) for _ in range(60)))
        runs = await wait_done(bus, list(run_ids), timeout=180)
        assert {r.status for r in runs} == {"finished"}, Counter(r.status for r in runs)
        for run in runs:
            assert isinstance(run.result, dict)
            assert run.result["finished_on"] == run.replica
        spread.update(r.replica for r in runs)
        if set(spread) == set(runners):
            break
    assert set(spread) == set(runners), spread


def test_prometheus_has_every_service_replica_as_an_up_target(cluster: Cluster) -> None:
    expected = Counter(
        c["Config"]["Labels"]["com.docker.compose.service"]
        for c in cluster.containers()
        if c["Config"]["Labels"]["com.docker.compose.service"] in SERVICES
    )
    assert sum(expected.values()) >= 10  # scaled by the previous test (3 runners, 2 gateways)

    def scraped() -> Counter[str] | None:
        try:
            targets = cluster.prometheus("/api/v1/targets")["data"]["activeTargets"]
        except OSError:
            return None
        up = Counter(
            t["labels"]["service"]
            for t in targets
            if t["labels"].get("job") == "agentbus" and t["health"] == "up"
        )
        return up if up == expected else None

    assert wait_for(scraped, 120, f"Prometheus targets up: {dict(expected)}", every=3) == expected
    query = cluster.prometheus("/api/v1/query?query=sum(up%7Bjob%3D%22agentbus%22%7D)")
    assert float(query["data"]["result"][0]["value"][1]) == sum(expected.values())


async def test_a_killed_runner_leaves_its_run_to_another_replica(
    cluster: Cluster, bus: Bus
) -> None:
    runners = hostnames(cluster, "workflow-runner")
    assert len(runners) >= 2
    run_id = await start_hold(bus, 20.0)

    async def started_on() -> str:
        while True:
            run = await get_run(bus, run_id)
            if run.steps:
                return str(run.steps[0].result)
            await asyncio.sleep(0.2)

    first = await asyncio.wait_for(started_on(), 60)
    assert first in runners
    docker("kill", runners[first])

    [run] = await wait_done(bus, [run_id], timeout=120)
    assert run.status == "finished", run.error
    assert isinstance(run.result, dict)
    assert run.result["started_on"] == first
    assert run.result["finished_on"] != first
    assert run.result["finished_on"] in runners
    assert run.attempts >= 2


async def test_a_nats_restart_loses_no_durable_event_or_run(cluster: Cluster) -> None:
    settings = cluster.operator_settings()
    async with Bus(settings, Source("docker-test", "before")) as bus:
        run_id = await start_hold(bus, 8.0)
        marker = f"docker.restart{uuid.uuid4().hex[:8]}"
        published = cluster.agentbus(
            "publish",
            "interface.changed",
            json.dumps(
                {
                    "interface": marker,
                    "old_version": "1.0.0",
                    "new_version": "1.0.1",
                    "compatibility": "none",
                }
            ),
        )
        assert published.returncode == 0, published.stderr
        before = await bus.js.stream_info("AGENTBUS_EVENTS")

    [nats] = cluster.containers("nats")
    docker("restart", "--time", "10", nats["Id"])
    cluster.wait_healthy(8, timeout=180)

    async with Bus(settings, Source("docker-test", "after")) as bus:
        after = await bus.js.stream_info("AGENTBUS_EVENTS")
        assert after.state.messages >= before.state.messages
        assert after.state.last_seq >= before.state.last_seq
        [run] = await wait_done(bus, [run_id], timeout=120)
        assert run.status == "finished", run.error

    wait_for(
        lambda: {i["name"] for i in cluster.status()} >= SERVICES,
        90,
        "every service back in agentbus status after the restart",
    )

    def decided() -> bool:
        result = cluster.agentbus("decisions", "--json", "--limit", "400")
        components = {
            json.loads(line)["component"] for line in result.stdout.splitlines() if marker in line
        }
        return len(components) == 4

    wait_for(decided, 90, "the event published before the restart decided by every maintainer")
