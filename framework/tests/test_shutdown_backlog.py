"""Shutdown under a backlog loses nothing: intake stops first, what was received is
answered (served within the grace, else ``unavailable``), and stop returns within the
grace and one second."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from framework_helpers import (
    EchoReply,
    EchoRequest,
    echo_interface,
    echo_service,
    requests_received,
    start_slow_service,
    unique,
)

from agentbus.framework.auth import AuthFolder
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.errors import RemoteError
from agentbus.framework.service import STOP_MARGIN
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService


def outcomes(results: list[EchoReply | BaseException]) -> dict[str, int]:
    """How many callers got each answer: ``ok``, an error code, or the exception type."""
    counts: dict[str, int] = {}
    for result in results:
        if isinstance(result, EchoReply):
            key = "ok"
        elif isinstance(result, RemoteError):
            key = result.code
        else:
            key = type(result).__name__
        counts[key] = counts.get(key, 0) + 1
    return counts


async def test_stop_with_a_backlog_answers_every_caller_within_grace_and_a_second(
    start_service: StartService, bus: Bus
) -> None:
    """300 requests at 2 slots (15 s of work), a 1 s grace: the first are served, the rest
    answered ``unavailable``; nobody is left to time out, and stop does not wait for the
    backlog (draining it, as before, took the whole 15 s)."""
    interface = echo_interface()
    service = await start_service(
        echo_service(interface), settings={"max_concurrency": 2, "shutdown_grace": 1.0}
    )
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text=str(i), delay=0.1), timeout=30))
        for i in range(300)
    ]
    await eventually(
        lambda: service.endpoints[0].num_requests == 300, what="all 300 requests received"
    )

    await asyncio.wait_for(service.stop(), 1.0 + STOP_MARGIN)

    results = await asyncio.gather(*requests, return_exceptions=True)
    counts = outcomes(results)
    assert set(counts) == {"ok", "unavailable"}, counts
    assert counts["ok"] == service.handled - 2, "only the 2 cancelled handlers were not served"
    unavailable = [r for r in results if isinstance(r, RemoteError)]
    assert all("retry" in str(r) for r in unavailable)


async def test_requests_arriving_after_the_stop_go_to_the_other_replica(
    start_service: StartService, bus: Bus
) -> None:
    """Intake stops first: once one replica began stopping, new requests reach the other."""
    interface = echo_interface()
    cls = echo_service(interface)
    leaving = await start_service(
        cls, instance="leaving", settings={"max_concurrency": 1, "shutdown_grace": 1.0}
    )
    staying = await start_service(cls, instance="staying")
    busy = asyncio.create_task(bus.request(interface, EchoRequest(text="busy", delay=0.5)))
    await eventually(lambda: leaving.handled + staying.handled == 1, what="one request running")
    stopping = asyncio.create_task(leaving.stop())
    await eventually(lambda: not leaving.endpoints[0].serving, what="the replica left")
    before = leaving.endpoints[0].num_requests

    replies = await asyncio.gather(
        *(bus.request(interface, EchoRequest(text=str(i)), timeout=5) for i in range(20))
    )

    assert {r.instance for r in replies} == {"staying"}
    assert leaving.endpoints[0].num_requests == before
    await stopping
    assert (await busy).text == "busy"


async def test_sigterm_under_a_backlog_exits_within_grace_and_a_second(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    """A real process (grace 1 s here) with 300 requests queued at its slots: SIGTERM,
    every caller is answered, and the process exits on its own (it was killed before)."""
    interface = echo_interface()
    name = unique("backlog")
    log = tmp_path / "service.log"
    process = await start_slow_service(
        settings, interface.name, name, log, grace=1, max_concurrency=2
    )
    try:

        async def serving() -> bool:
            assert process.returncode is None, f"the process exited: {log.read_text()}"
            return await requests_received(bus, name) == 0

        await eventually(serving, timeout=20.0, what=f"{name} answering $SRV.STATS")
        requests = [
            asyncio.create_task(
                bus.request(interface, EchoRequest(text=str(i), delay=0.1), timeout=30)
            )
            for i in range(300)
        ]

        async def all_received() -> bool:
            return await requests_received(bus, name) == 300

        await eventually(all_received, what="300 requests received by the process")
        process.send_signal(signal.SIGTERM)

        results = await asyncio.gather(*requests, return_exceptions=True)
        counts = outcomes(results)
        assert set(counts) <= {"ok", "unavailable"}, counts
        # grace + margin, and room for the interpreter to exit
        assert await asyncio.wait_for(process.wait(), 1.0 + STOP_MARGIN + 3.0) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_cancel_in_flight_also_answers_the_queued_requests(
    start_service: StartService, bus: Bus
) -> None:
    """The second signal: running handlers cancelled, queued requests answered unrun; the
    service goes on serving."""
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_concurrency": 2})
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=30), timeout=60))
        for _ in range(10)
    ]
    await eventually(lambda: service.endpoints[0].num_requests == 10, what="2 running and 8 queued")

    assert service.cancel_in_flight() == 2

    results = await asyncio.gather(*requests, return_exceptions=True)
    assert outcomes(results) == {"unavailable": 10}
    assert service.handled == 2, "the queued ones did not run"
    assert (await bus.request(interface, EchoRequest(text="still up"))).text == "still up"


async def test_stop_with_nats_gone_returns_within_grace_and_a_second(
    settings: Settings, tmp_path: Path, test_auth: AuthFolder
) -> None:
    interface = echo_interface()
    with EmbeddedNats(tmp_path / "doomed", auth=test_auth.server_config) as server:
        service = echo_service(interface)(
            settings.model_copy(update={"nats_url": server.url, "shutdown_grace": 1.0})
        )
        await service.start()
        client = service.bus.nc
        server.kill()
        await eventually(lambda: not client.is_connected, what="the service's connection lost")

        await asyncio.wait_for(service.stop(), 1.0 + STOP_MARGIN)

        assert client.is_closed
