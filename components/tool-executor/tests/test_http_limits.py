"""http.fetch's limits that the outside attack corpus broke (issue 13): one deadline for the
whole call, and credentials only for the origin the caller named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from executor_helpers import FakeWeb

from agentbus.framework import RemoteError
from agentbus.interfaces.catalog.tools import TOOLS_EXECUTE, Completed, ExecuteRequest

SECRETS = {"Authorization": "Bearer caller-token", "Cookie": "session=caller"}


@pytest.fixture
def elsewhere() -> Iterator[FakeWeb]:
    """A second allowed server: another origin (another loopback address)."""
    server = FakeWeb("127.0.0.2")
    yield server
    server.close()


async def executor_for(start_executor: Any, *servers: FakeWeb, timeout: float = 5.0) -> None:
    hosts = [f"{s.address}:{s.port}" for s in servers]
    policy = {"tools": ["http.fetch"], "hosts": hosts, "medium": "run", "timeout": timeout}
    await start_executor({"policy": {"agent": policy}})


async def fetch(bus_as: Any, arguments: dict[str, Any]) -> Completed:
    bus = await bus_as("agent")
    request = ExecuteRequest(tool="http.fetch", arguments=arguments, caller="agent")
    reply = await bus.request(TOOLS_EXECUTE, request, timeout=30)
    assert isinstance(reply.result, Completed), reply.result
    return reply.result


async def test_a_server_sending_a_byte_at_a_time_is_cut_at_the_calls_deadline(
    start_executor: Any, bus_as: Any, web: FakeWeb
) -> None:
    web.trickle["/slow"] = (b"x" * 40, 0.25)  # ten seconds of a byte every quarter second
    await executor_for(start_executor, web, timeout=1.5)
    bus = await bus_as("agent")
    request = ExecuteRequest(
        tool="http.fetch", arguments={"url": f"{web.base}/slow"}, caller="agent"
    )

    with pytest.raises(RemoteError) as failed:
        await bus.request(TOOLS_EXECUTE, request, timeout=30)

    assert failed.value.code == "timeout"
    assert "did not finish within 1.5s" in failed.value.reply.message


async def test_credentials_stay_with_the_first_origin_across_a_redirect(
    start_executor: Any, bus_as: Any, web: FakeWeb, elsewhere: FakeWeb
) -> None:
    web.routes["/same"] = (302, {"Location": "/landing"}, b"")
    web.routes["/away"] = (302, {"Location": f"{elsewhere.base}/landing"}, b"")
    await executor_for(start_executor, web, elsewhere)
    headers = {**SECRETS, "X-Trace": "kept"}

    await fetch(bus_as, {"url": f"{web.base}/same", "headers": headers})
    await fetch(bus_as, {"url": f"{web.base}/away", "headers": headers})

    same_origin = web.headers[1]  # /same, then /landing on the same server
    assert same_origin["authorization"] == "Bearer caller-token"
    assert same_origin["cookie"] == "session=caller"
    [other_origin] = elsewhere.headers
    assert "authorization" not in other_origin
    assert "cookie" not in other_origin
    assert other_origin["x-trace"] == "kept"
