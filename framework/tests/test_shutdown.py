"""Graceful shutdown: stop intake, finish what is in flight, then disconnect."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from framework_helpers import (
    EchoReply,
    EchoRequest,
    echo_interface,
    echo_service,
    request_json,
    requests_received,
    start_slow_service,
    unique,
)

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.errors import NoRespondersError, RemoteError
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService


async def test_stop_finishes_a_hundred_in_flight_requests(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text=str(i), delay=0.5)))
        for i in range(100)
    ]
    await eventually(lambda: service.handled == 100, what="100 requests in flight")

    started = time.monotonic()
    await service.stop()
    took = time.monotonic() - started

    replies = await asyncio.gather(*requests)
    assert sorted(int(r.text) for r in replies) == list(range(100))
    assert took < service.settings.shutdown_grace, "stop waited for the work, not the grace"
    with pytest.raises(NoRespondersError):
        await bus.request(interface, EchoRequest(text="after stop"))


async def test_requests_still_queued_when_stopping_are_answered(
    start_service: StartService, bus: Bus
) -> None:
    """More requests than concurrency slots: the queued ones are served too, not dropped."""
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_concurrency": 10})
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text=str(i), delay=0.1)))
        for i in range(40)
    ]
    await eventually(lambda: service.handled >= 10, what="first requests in flight")

    await service.stop()

    replies = await asyncio.gather(*requests)
    assert len(replies) == 40
    assert service.handled == 40


async def test_work_beyond_the_grace_is_cancelled_with_an_error_reply(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"shutdown_grace": 0.2})
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=30)))
        for _ in range(5)
    ]
    await eventually(lambda: service.handled == 5, what="5 requests in flight")

    started = time.monotonic()
    await service.stop()
    assert time.monotonic() - started < 2.0

    results = await asyncio.gather(*requests, return_exceptions=True)
    for result in results:
        assert isinstance(result, RemoteError), result
        assert result.code == "unavailable"
        assert "retry" in str(result)


async def test_cancel_in_flight_answers_unavailable(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=30)))
        for _ in range(3)
    ]
    await eventually(lambda: service.handled == 3, what="3 requests in flight")

    assert service.cancel_in_flight() == 3

    results = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(r, RemoteError) and r.code == "unavailable" for r in results), results
    assert (await bus.request(interface, EchoRequest(text="still up"))).text == "still up"


async def test_shutdown_hook_runs_after_in_flight_work(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    base = echo_service(interface)
    seen: list[int] = []

    class Hooked(base):  # type: ignore[misc, valid-type]
        async def shutdown(self) -> None:
            seen.append(len(self._slots.tasks))
            assert self.bus.nc.is_connected, "shutdown runs before disconnecting"

    service = await start_service(Hooked)
    request = asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=0.3)))
    await eventually(lambda: service.handled == 1, what="request in flight")

    await service.stop()

    assert (await request).text == "x"
    assert seen == [0]


async def test_stopping_one_replica_loses_no_request(start_service: StartService, bus: Bus) -> None:
    """A rolling restart: while one replica drains, new requests go to the other."""
    interface = echo_interface()
    cls = echo_service(interface)
    leaving = await start_service(cls, instance="leaving")
    staying = await start_service(cls, instance="staying")

    async def steady_load() -> list[EchoReply]:
        return [
            await bus.request(interface, EchoRequest(text=str(i), delay=0.01)) for i in range(60)
        ]

    in_flight = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="slow", delay=0.3)))
        for _ in range(40)
    ]
    load = asyncio.create_task(steady_load())
    await eventually(lambda: leaving.handled > 0, what="the leaving replica got work")
    await leaving.stop()

    assert len(await asyncio.gather(*in_flight)) == 40
    assert len(await load) == 60
    assert staying.handled > 0


# -- a real process and a real signal ----------------------------------------------------------


async def wait_until_serving(bus: Bus, name: str, process: asyncio.subprocess.Process) -> None:
    async def answers() -> bool:
        assert process.returncode is None, "the service process exited at start-up"
        try:
            await request_json(bus, f"$SRV.PING.{name}", timeout=0.2)
        except Exception:
            return False
        return True

    await eventually(answers, timeout=20.0, interval=0.05, what=f"{name} answering $SRV.PING")


async def test_sigterm_finishes_in_flight_requests_and_exits_zero(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    interface = echo_interface()
    name = unique("sigterm")
    log = tmp_path / "service.log"
    process = await start_slow_service(settings, interface.name, name, log, grace=10)
    try:
        await wait_until_serving(bus, name, process)
        requests = [
            asyncio.create_task(
                bus.request(interface, EchoRequest(text=str(i), delay=0.5), timeout=10)
            )
            for i in range(100)
        ]

        async def all_in_flight() -> bool:
            return await requests_received(bus, name) == 100

        await eventually(all_in_flight, what="100 requests in flight in the process")

        process.send_signal(signal.SIGTERM)

        replies = await asyncio.gather(*requests, return_exceptions=True)
        failures = [r for r in replies if not isinstance(r, EchoReply)]
        assert not failures, f"{len(failures)} failed, first: {failures[0]!r}"
        assert sorted(int(r.text) for r in replies if isinstance(r, EchoReply)) == list(range(100))
        assert await asyncio.wait_for(process.wait(), 10) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "SIGTERM received" in log.read_text()


async def test_second_sigterm_cancels_in_flight_work(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    interface = echo_interface()
    name = unique("sigterm2")
    log = tmp_path / "service.log"
    process = await start_slow_service(settings, interface.name, name, log, grace=10)
    try:
        await wait_until_serving(bus, name, process)
        requests = [
            asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=30), timeout=10))
            for _ in range(5)
        ]

        async def all_in_flight() -> bool:
            return await requests_received(bus, name) == 5

        await eventually(all_in_flight, what="5 requests in flight in the process")
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)

        results = await asyncio.gather(*requests, return_exceptions=True)
        assert all(isinstance(r, RemoteError) and r.code == "unavailable" for r in results), results
        assert await asyncio.wait_for(process.wait(), 5) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "second signal" in log.read_text()
