"""``agentbus health``: the exit-code health command that container healthchecks run."""

from __future__ import annotations

import asyncio
import json
import sys

from framework_helpers import echo_interface, echo_service, unique

from agentbus.framework.embedded import free_port
from agentbus.framework.testing import child_environment
from agentbus.framework.testing.plugin import StartService


async def health(*args: str, nats_url: str, **env: str) -> tuple[int, str, str]:
    """Run the real CLI in a subprocess without blocking the services of this event loop."""
    clean = child_environment()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentbus.framework.cli",
        "--nats-url",
        nats_url,
        "health",
        *args,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_instance_of_this_container_is_checked_from_agentbus_instance(
    start_service: StartService, nats_url: str
) -> None:
    name = unique("health")
    cls = echo_service(echo_interface(), service_name=name)
    await start_service(cls, instance="mine")
    await start_service(cls, instance="sibling")

    code, out, _ = await health("--check", nats_url=nats_url, AGENTBUS_INSTANCE="mine")
    assert (code, out) == (0, "")

    code, out, _ = await health(nats_url=nats_url, AGENTBUS_INSTANCE="mine")
    assert code == 0
    answer = json.loads(out)
    assert (answer["name"], answer["id"]) == (name, "mine")


async def test_a_sibling_answering_does_not_make_a_missing_instance_healthy(
    start_service: StartService, nats_url: str
) -> None:
    name = unique("health")
    await start_service(echo_service(echo_interface(), service_name=name), instance="sibling")

    code, out, err = await health(
        "--check", "--timeout", "0.5", nats_url=nats_url, AGENTBUS_INSTANCE="gone"
    )
    assert (code, out, err) == (1, "", "")

    code, _, err = await health(
        "--service", name, "--timeout", "0.5", nats_url=nats_url, AGENTBUS_INSTANCE="gone"
    )
    assert code == 1
    assert "unhealthy" in err
    assert f"{name}/gone" in err


async def test_a_service_name_alone_accepts_any_instance(
    start_service: StartService, nats_url: str
) -> None:
    name = unique("health")
    await start_service(echo_service(echo_interface(), service_name=name), instance="any")

    code, _, _ = await health("--check", nats_url=nats_url, AGENTBUS_HEALTH_SERVICE=name)
    assert code == 0
    code, _, _ = await health(
        "--check", "--timeout", "0.5", nats_url=nats_url, AGENTBUS_HEALTH_SERVICE=unique("none")
    )
    assert code == 1


async def test_without_a_service_the_nats_server_and_jetstream_are_checked(nats_url: str) -> None:
    code, out, _ = await health(nats_url=nats_url)
    assert code == 0
    assert "streams" in json.loads(out)["jetstream"]

    code, out, _ = await health("--check", "--nats", nats_url=nats_url, AGENTBUS_INSTANCE="x")
    assert (code, out) == (0, "")


async def test_an_unreachable_server_is_unhealthy() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    code, out, _ = await health("--check", "--timeout", "1", nats_url=url)
    assert (code, out) == (1, "")
    code, _, err = await health("--timeout", "1", nats_url=url)
    assert code == 1
    assert "unhealthy: NATS" in err
