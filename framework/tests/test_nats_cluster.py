"""agentbus on a three-node NATS cluster: seed lists, R3 streams and buckets, upgrades from
R1, ``agentbus up --nats-cluster 3`` and ``agentbus js status``, and the loss of a node."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Server
from nats.js.api import StreamConfig

from agentbus.framework import Bus, ConfigError, EmbeddedNats, Settings
from agentbus.framework.auth import AuthFolder
from agentbus.framework.config import redact_url
from agentbus.framework.embedded import ClusterRoutes, discovered_url, free_port
from agentbus.framework.embedded_cluster import EmbeddedCluster
from agentbus.framework.jetstream import (
    CONFIG_BUCKET,
    KV_BUCKETS,
    STREAMS,
    ReplicatedJetStream,
    StreamSpec,
    declare_all,
    declare_stream,
    key_value,
)
from agentbus.framework.reconnect import jittered_reconnect
from agentbus.framework.supervisor import ClusterFile
from agentbus.framework.testing import child_environment, eventually
from agentbus.interfaces.metadata import Source

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "hello"
AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]
sys.path.insert(0, str(EXAMPLES))

from hello_service import HelloService  # noqa: E402


@pytest.fixture
def cluster(tmp_path: Path, test_auth: AuthFolder) -> Iterator[EmbeddedCluster]:
    """Three nodes admitting only the session's identities (clients need their nkey)."""
    with EmbeddedCluster(tmp_path / "nats", 3, auth=test_auth.server_config) as started:
        yield started


def settings_for(url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(nats_url=url, data_dir=tmp_path / "agentbus", shutdown_grace=1.0, **extra)


# -- settings and discovery ------------------------------------------------------------


def test_several_seed_urls_mean_three_replicas_unless_told() -> None:
    urls = "nats://127.0.0.1:1,nats://127.0.0.1:2, nats://127.0.0.1:3"
    assert Settings(nats_url=urls).replicas_for(urls) == 3
    assert Settings(nats_url=urls, js_replicas=1).replicas_for(urls) == 1
    assert Settings().replicas_for("nats://127.0.0.1:1") == 1
    assert Settings(js_replicas=3).replicas_for("nats://127.0.0.1:1") == 3
    assert Settings(nats_url="tls://a:1,tls://b:2").nats_tls


def test_a_list_of_urls_is_redacted_url_by_url() -> None:
    redacted = redact_url("nats://u:s3cret@a:1,nats://tok3n@b:2,nats://c:3")
    assert "s3cret" not in redacted
    assert "tok3n" not in redacted
    assert redacted == "nats://u:***@a:1,nats://***@b:2,nats://c:3"


def test_a_cluster_url_file_is_discovered_as_a_list(tmp_path: Path) -> None:
    (tmp_path / "nats.url").write_text("nats://127.0.0.1:1\nnats://127.0.0.1:2\n\n")
    assert discovered_url(tmp_path) == "nats://127.0.0.1:1,nats://127.0.0.1:2"


def test_reconnects_try_every_server_at_once_then_wait_with_jitter() -> None:
    choose = jittered_reconnect(2.0)
    fresh, tried = Server(uri="nats://a:1"), Server(uri="nats://b:2")  # type: ignore[arg-type]
    tried.reconnects = 1
    assert choose([tried, fresh], {}) == (fresh, 0.0)
    fresh.reconnects = 1
    delays = {choose([tried, fresh], {})[1] for _ in range(20)}
    assert all(1.0 <= delay <= 3.0 for delay in delays)
    assert len(delays) > 1  # jitter: not every client waits the same


def test_a_stranger_cannot_join_the_cluster_as_a_route(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    first = cluster.nodes[0]
    assert first.cluster is not None
    stranger = EmbeddedNats(
        tmp_path / "stranger",
        cluster=ClusterRoutes("n4", free_port(), first.cluster.peers, "not-the-password"),
    )
    with stranger:
        wait_for(
            lambda: (
                "Router connection closed: Authentication Failure" in first.log_path.read_text()
            ),
            20,
            f"n1 to refuse the stranger's route (log: {first.log_path})",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{first.monitor_port}/routez") as reply:
            routes = json.loads(reply.read())["routes"]
        assert {route.get("remote_name") for route in routes} == {"n2", "n3"}


def test_the_cluster_file_asks_for_a_cluster_in_its_nats_table(tmp_path: Path) -> None:
    path = tmp_path / "agentbus.toml"
    path.write_text("[nats]\nport = 0\ncluster = 3\n", encoding="utf-8")
    assert ClusterFile.load(path).nats.cluster == 3
    path.write_text("[nats]\ncluster = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cluster"):
        ClusterFile.load(path)


# -- replicas --------------------------------------------------------------------------


async def test_a_service_on_the_cluster_declares_r3_streams_and_buckets(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    for node in cluster:  # each node still wants a client's nkey
        with socket.create_connection((node.host, node.port), timeout=5) as sock:
            assert json.loads(sock.recv(4096).split(b" ", 1)[1])["auth_required"] is True
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
            assert b"Authorization Violation" in sock.recv(4096)

    service = HelloService(settings_for(cluster.url, tmp_path, js_replicas=3))
    await service.start()
    try:
        assert service.bus.replicas == 3
        for name in [s.name for s in STREAMS] + [f"KV_{b}" for b in KV_BUCKETS]:
            info = await service.bus.js.stream_info(name)
            assert info.config.num_replicas == 3, name
            assert info.cluster is not None
            assert info.cluster.leader in {"n1", "n2", "n3"}
            assert len(info.cluster.replicas or []) == 2, name
    finally:
        await service.stop()


async def test_an_r1_stream_and_bucket_are_upgraded_to_r3_when_asked(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    spec = StreamSpec("AGENTBUS_UPGRADE_TEST", ("upgrade.test.>",), "for the upgrade test")
    async with Bus(settings_for(cluster.url, tmp_path), Source("test", "r1")) as bus:
        one = ReplicatedJetStream(bus.nc, replicas=1)
        await declare_stream(one, spec, "file")
        await key_value(one, CONFIG_BUCKET)
        await one.publish("upgrade.test.kept", b"written at R1")
        assert (await one.stream_info(spec.name)).config.num_replicas == 1

        # A service's context (no upgrade) leaves it, since it may not change streams.
        await declare_stream(ReplicatedJetStream(bus.nc, replicas=3), spec, "file")
        assert (await one.stream_info(spec.name)).config.num_replicas == 1

        three = ReplicatedJetStream(bus.nc, replicas=3, upgrade=True)
        await declare_stream(three, spec, "file")
        kv = await key_value(three, CONFIG_BUCKET)
        info = await one.stream_info(spec.name)
        assert info.config.num_replicas == 3
        assert info.state.messages == 1
        assert (await one.stream_info(f"KV_{CONFIG_BUCKET}")).config.num_replicas == 3
        await kv.put("after", b"upgrade")

        # Declared again with fewer, nothing is lowered.
        await declare_stream(ReplicatedJetStream(bus.nc, replicas=1, upgrade=True), spec, "file")
        assert (await one.stream_info(spec.name)).config.num_replicas == 3


async def test_r3_on_a_single_server_is_a_clear_error(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    spec = StreamSpec("AGENTBUS_R3_REFUSED", ("r3.refused.>",), "never created")
    async with Bus(settings_for(nats_server.url, tmp_path), Source("test", "r3")) as bus:
        with pytest.raises(ConfigError, match="AGENTBUS_JS_REPLICAS"):
            await declare_stream(ReplicatedJetStream(bus.nc, replicas=3), spec, "file")
        with pytest.raises(ConfigError, match="cluster of at least 3"):
            await key_value(ReplicatedJetStream(bus.nc, replicas=3), "agentbus_r3_refused")
        await bus.js.add_stream(StreamConfig(name="AGENTBUS_R1", subjects=["r1.only"]))
        try:
            with pytest.raises(ConfigError, match="AGENTBUS_JS_REPLICAS"):
                await declare_stream(
                    ReplicatedJetStream(bus.nc, replicas=3, upgrade=True),
                    StreamSpec("AGENTBUS_R1", ("r1.only",), ""),
                    "file",
                )
        finally:
            await bus.js.delete_stream("AGENTBUS_R1")


async def test_js_upgrade_raises_every_agentbus_stream_and_bucket(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    async with Bus(settings_for(cluster.url, tmp_path), Source("test", "cli")) as bus:
        one = ReplicatedJetStream(bus.nc, replicas=1)
        await declare_stream(one, StreamSpec("AGENTBUS_OLD", ("old.>",), "an R1 stream"), "file")
        await key_value(one, "agentbus_old_bucket")
        await one.add_stream(StreamConfig(name="NOT_OURS", subjects=["not.ours"]))
        env = child_environment() | {"AGENTBUS_DATA_DIR": str(tmp_path / "cli")}
        done = await asyncio.to_thread(run_cli, "--nats-url", cluster.url, "js", "upgrade", env=env)
        assert done.returncode == 0, done.stderr
        assert "AGENTBUS_OLD" in done.stdout
        for name in ("AGENTBUS_OLD", "KV_agentbus_old_bucket", "AGENTBUS_EVENTS"):
            assert (await one.stream_info(name)).config.num_replicas == 3, name
        assert (await one.stream_info("NOT_OURS")).config.num_replicas == 1
        again = await asyncio.to_thread(
            run_cli, "--nats-url", cluster.url, "js", "upgrade", env=env
        )
        assert "already has the asked replicas" in again.stdout


async def test_js_status_shows_a_lost_node_as_not_up(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    async with Bus(settings_for(cluster.url, tmp_path), Source("test", "status")) as bus:
        await declare_all(bus.js)
    cluster.nodes[2].kill()
    env = child_environment() | {"AGENTBUS_DATA_DIR": str(tmp_path / "cli")}

    async def n3_state() -> str | None:
        done = await asyncio.to_thread(
            run_cli, "--nats-url", cluster.url, "js", "status", "--json", env=env
        )
        if done.returncode != 0:
            return None
        servers = {s["name"]: s for s in json.loads(done.stdout)["servers"]}
        assert not servers["n3"]["connected"]
        return None if servers["n3"]["state"] == "up" else servers["n3"]["state"]

    assert await eventually(n3_state, timeout=30, interval=1, what="js status to see n3 gone") in {
        "unseen",
        "offline",
    }


# -- agentbus up --nats-cluster 3 ------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTBUS, *args], env=env, cwd=ROOT, text=True, capture_output=True, timeout=60
    )


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def js_status(env: dict[str, str]) -> dict[str, object] | None:
    done = run_cli("js", "status", "--json", env=env)
    return json.loads(done.stdout) if done.returncode == 0 else None


def node_pid(up: int, name: str) -> int:
    """The pid of embedded node ``name`` (its store is ``.../cluster/<name>/jetstream``)."""
    out = subprocess.run(["pgrep", "-P", str(up)], text=True, capture_output=True, check=False)
    for pid in map(int, out.stdout.split()):
        argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        if any(part.endswith(f"/cluster/{name}/jetstream") for part in argv):
            return pid
    raise AssertionError(f"no nats-server child of {up} for node {name}")


@pytest.mark.slow
def test_up_with_a_cluster_of_three_survives_the_loss_of_a_node(tmp_path: Path) -> None:
    data = tmp_path / "state"
    env = child_environment(keep_key=False) | {"AGENTBUS_DATA_DIR": str(data)}
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [*AGENTBUS, "up", "-f", str(EXAMPLES / "agentbus.toml"), "--nats-cluster", "3"],
            env=env, cwd=ROOT, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        status = wait_for(
            lambda: (s := js_status(env)) and len(s["resources"]) >= 6 and s,  # type: ignore[arg-type]
            40,
            f"`agentbus js status` to show the declared streams (log: {log_path})",
        )
        assert len((data / "nats.url").read_text().split()) == 3
        assert [s["name"] for s in status["servers"]] == ["n1", "n2", "n3"]
        assert sum(s["connected"] for s in status["servers"]) == 1
        assert {r["replicas"] for r in status["resources"]} == {3}
        config = next(r for r in status["resources"] if r["name"] == CONFIG_BUCKET)
        assert config["kind"] == "kv"
        assert len(config["followers"]) == 2
        table = run_cli("js", "status", env=env)
        assert table.returncode == 0
        assert all(len(line) <= 80 for line in table.stdout.splitlines())

        victim = config["leader"]  # the KV bucket's leader: a new one must be elected
        os.kill(node_pid(up.pid, victim), signal.SIGKILL)

        killed = time.monotonic()
        greeted = run_cli("request", "hello.greet", '{"name": "Ada"}', "--timeout", "20", env=env)
        print(f"answered after {time.monotonic() - killed:.2f}s: {greeted.stderr}")
        assert greeted.returncode == 0, greeted.stderr
        assert json.loads(greeted.stdout)["greeting"] == "Hello, Ada!"
        wrote = _write_config(data, env)
        assert wrote > 0

        wait_for(
            lambda: f"nats-server {victim} is back on" in log_path.read_text(),
            30,
            f"the supervisor to restart node {victim} (log: {log_path})",
        )
        back = wait_for(
            lambda: (
                (s := js_status(env))
                and not any(f["offline"] for r in s["resources"] for f in r["followers"])
                and s
            ),
            30,
            "every follower online again",
        )
        assert [s["name"] for s in back["servers"]] == ["n1", "n2", "n3"]
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        assert not (data / "nats.url").exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def _write_config(data: Path, env: dict[str, str]) -> int:
    """Put a key into the R3 config bucket as the operator (a majority of two remains)."""
    script = (
        "import asyncio, sys\n"
        "from agentbus.framework import Bus, Settings\n"
        "from agentbus.framework.jetstream import CONFIG_BUCKET, key_value\n"
        "from agentbus.interfaces.metadata import Source\n"
        "async def main():\n"
        f"    settings = Settings(data_dir={str(data)!r})\n"
        "    async with Bus(settings, Source('cli', 'kv')) as bus:\n"
        "        for attempt in range(6):  # a write in flight during the election times out\n"
        "            try:\n"
        "                kv = await key_value(bus.js, CONFIG_BUCKET)\n"
        "                print(await kv.put('cluster-test', b'written with a node down'))\n"
        "                return\n"
        "            except Exception as exc:\n"
        "                print(f'attempt {attempt}: {exc!r}', file=sys.stderr)\n"
        "        sys.exit('the R3 bucket took no write in 6 attempts')\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())
