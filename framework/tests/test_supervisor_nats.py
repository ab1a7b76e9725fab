"""``agentbus up`` watches its embedded nats-server like any child: killed, it comes back on
the same port and JetStream store, and the services' clients reconnect to it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import nats

from agentbus.framework import Bus, Settings
from agentbus.framework.supervisor import ClusterFile, Supervisor
from agentbus.framework.testing import eventually
from agentbus.interfaces.metadata import Source

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hello"
sys.path.insert(0, str(EXAMPLES))

from hello_service import GREET, GreetRequest  # noqa: E402


def cluster_file(folder: Path) -> Path:
    path = folder / "agentbus.toml"
    path.write_text(
        f"""
[nats]
port = 0

[[service]]
name = "hello"
target = "hello_service:HelloService"
env = {{ PYTHONPATH = "{EXAMPLES}" }}
""",
        encoding="utf-8",
    )
    return path


async def test_a_killed_embedded_server_is_restarted_on_its_store_and_services_reconnect(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    supervisor = Supervisor(ClusterFile.load(cluster_file(tmp_path)), tmp_path / "data")
    supervisor.log = lines.append
    supervisor.start()
    stop = threading.Event()

    def supervise() -> None:
        while not stop.is_set():
            supervisor.poll()
            stop.wait(0.1)

    watcher = threading.Thread(target=supervise, daemon=True)
    watcher.start()
    try:
        nats_server = supervisor.nats
        assert nats_server is not None
        assert nats_server.pid is not None
        url = supervisor.url
        client = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = client.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept.>"])
        await js.publish("kept.one", b"before the crash")
        async with Bus(Settings(nats_url=url), Source("test", "supervisor"), patient=True) as bus:
            await eventually(
                lambda: bus.request(GREET, GreetRequest(name="Ada"), timeout=5),
                timeout=60,
                what="the service answering at first",
            )

            os.kill(nats_server.pid, signal.SIGKILL)

            await eventually(
                lambda: any("is back on" in line for line in lines),
                timeout=30,
                what="the supervisor to start nats-server again",
            )
            assert supervisor.url == url
            assert any(
                "nats-server exited with code" in line and str(nats_server.log_path) in line
                for line in lines
            ), lines
            info = await eventually(
                lambda: js.stream_info("KEPT"), timeout=30, what="the stream after the restart"
            )
            assert info.state.messages == 1
            await eventually(
                lambda: bus.request(GREET, GreetRequest(name="Grace"), timeout=5),
                timeout=60,
                what="the service answering again",
            )
        await client.close()
    finally:
        stop.set()
        await asyncio.to_thread(watcher.join)
        await asyncio.to_thread(supervisor.stop)
