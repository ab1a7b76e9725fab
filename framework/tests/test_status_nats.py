"""``agentbus status`` shows the NATS nodes: a cluster's by name (connected, up, unseen,
offline), a single server as one; ``--json`` stays the list of services, ``--json --nats``
adds the nodes; JetStream without a majority still leaves the nodes shown."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentbus.framework import Bus, EmbeddedNats, Settings
from agentbus.framework.auth import AuthFolder
from agentbus.framework.cli.nats_servers import nodes_line
from agentbus.framework.embedded_cluster import EmbeddedCluster
from agentbus.framework.jetstream import ReplicatedJetStream, declare_all
from agentbus.framework.testing import child_environment, eventually
from agentbus.interfaces.metadata import Source

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "hello"))

from hello_service import HelloService  # noqa: E402


@pytest.fixture
def cluster(tmp_path: Path, test_auth: AuthFolder) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(tmp_path / "nats", 3, auth=test_auth.server_config) as started:
        yield started


def agentbus(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_environment() | {"AGENTBUS_DATA_DIR": str(tmp_path / "cli"), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "agentbus.framework.cli", "--nats-url", url, "status", *args],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=60,
    )


async def status(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(agentbus, url, tmp_path, *args)


def nats_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    assert lines, f"status printed nothing: {done.stderr}"
    return lines[0]


async def test_status_names_the_three_nodes_and_the_one_connected_to(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    settings = Settings(
        nats_url=cluster.url, data_dir=tmp_path / "svc", shutdown_grace=1.0, js_replicas=3
    )
    service = HelloService(settings)
    await service.start()
    try:
        second = cluster.nodes[1].url
        done = await status(second, tmp_path)
        assert done.returncode == 0, done.stderr
        assert nats_line(done) == "NATS cluster agentbus: n1, n2 (connected), n3"
        assert "hello" in done.stdout.split()

        listed = await status(second, tmp_path, "--json")
        assert listed.returncode == 0, listed.stderr
        services = json.loads(listed.stdout)
        assert [s["name"] for s in services] == ["hello"]  # still the list scripts read

        both = await status(second, tmp_path, "--json", "--nats")
        assert both.returncode == 0, both.stderr
        shown = json.loads(both.stdout)
        assert [s["name"] for s in shown["services"]] == ["hello"]
        nats = shown["nats"]
        assert nats["cluster"] == "agentbus"
        assert nats["routed"] == 3
        assert nats["error"] is None
        assert nats["url"] == second
        assert nats["servers"] == [
            {"name": "n1", "connected": False, "state": "up"},
            {"name": "n2", "connected": True, "state": "up"},
            {"name": "n3", "connected": False, "state": "up"},
        ]
    finally:
        await service.stop()


async def test_status_shows_a_lost_node_as_not_up(cluster: EmbeddedCluster, tmp_path: Path) -> None:
    settings = Settings(nats_url=cluster.url, data_dir=tmp_path / "js")
    async with Bus(settings, Source("test", "status")) as bus:
        await declare_all(ReplicatedJetStream(bus.nc, replicas=3))
    cluster.nodes[2].kill()

    async def n3_shown() -> str | None:
        done = await status(cluster.nodes[0].url, tmp_path)
        line = nats_line(done)
        return line if "n3 unseen" in line or "n3 offline" in line else None

    line = await eventually(n3_shown, timeout=30, interval=1, what="status to show n3 gone")
    assert line.startswith("NATS cluster agentbus: n1 (connected), n2, n3 ")


async def test_status_shows_the_nodes_when_jetstream_has_no_majority(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    settings = Settings(nats_url=cluster.url, data_dir=tmp_path / "js")
    async with Bus(settings, Source("test", "status")) as bus:
        await declare_all(ReplicatedJetStream(bus.nc, replicas=3))
    cluster.nodes[1].kill()
    cluster.nodes[2].kill()

    async def unanswered() -> dict[str, Any] | None:  # n1 may answer until it steps down
        done = await status(cluster.nodes[0].url, tmp_path, "--json", "--nats")
        assert done.returncode == 0, done.stderr  # no services, but the JSON is the answer
        nats: dict[str, Any] = json.loads(done.stdout)["nats"]
        return nats if nats["error"] else None

    nats = await eventually(unanswered, timeout=40, interval=1, what="JetStream to stop answering")
    assert nats["cluster"] == "agentbus"
    assert nats["servers"] == [{"name": "n1", "connected": True, "state": "up"}]
    assert "JetStream did not list its streams within 3s" in nats["error"]

    table = await status(cluster.nodes[0].url, tmp_path)
    assert table.returncode == 1  # no services answered
    assert "NATS cluster agentbus: n1 (connected) (JetStream did not list" in " ".join(
        table.stdout.split()
    )
    assert "no services answered" in table.stdout


async def test_status_on_one_server_says_it_is_not_a_cluster(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    done = await status(nats_server.url, tmp_path)
    assert "Traceback" not in done.stderr
    assert nats_line(done) == f"NATS: one server, {nats_server.url} (not a cluster)"

    shown = json.loads((await status(nats_server.url, tmp_path, "--json", "--nats")).stdout)
    nats = shown["nats"]
    assert nats["cluster"] is None
    assert nats["routed"] == 1
    assert [s["connected"] for s in nats["servers"]] == [True]


def test_routed_nodes_that_no_stream_names_are_counted() -> None:
    nodes: dict[str, Any] = {
        "cluster": "c",
        "servers": [
            {"name": "a", "connected": True, "state": "up"},
            {"name": "b", "connected": False, "state": "offline"},
        ],
        "routed": 3,
        "url": "nats://127.0.0.1:1",
        "error": None,
    }
    line = nodes_line(nodes)
    assert line == "NATS cluster c: a (connected), b offline; 1 more routed, named by no stream yet"
    assert nodes_line(nodes | {"routed": 1}) == "NATS cluster c: a (connected), b offline"
