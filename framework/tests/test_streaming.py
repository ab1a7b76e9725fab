"""The stream runtime on its own: chunks in order, a cancel when the caller leaves early, and a
cancel the service could not hear yet (the request still waited for a slot) reaching it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from framework_helpers import unique

from agentbus.framework import Service, streams
from agentbus.framework.bus import Bus
from agentbus.framework.context import MessageContext
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.message import BusMessage, Interface, stream_interface


class Count(BusMessage):
    upto: int = 0
    """0: count until cancelled."""
    every: float = 0.01


class Tick(BusMessage):
    n: int


CountInterface = Interface[Count, Tick]


def count_interface() -> CountInterface:
    return stream_interface(
        f"test.count{uuid.uuid4().hex[:10]}", "1.0.0", request=Count, chunk=Tick
    )


def counter_service(interface: CountInterface, ends: list[str]) -> type[Service]:
    """A service whose stream handler counts, noting in ``ends`` how each stream ended."""

    class Counter(Service):
        name = unique("counter")

        @streams(interface)
        async def count(self, request: Count, ctx: MessageContext) -> AsyncIterator[Tick]:
            n = 0
            try:
                while request.upto == 0 or n < request.upto:
                    yield Tick(n=n)
                    n += 1
                    await asyncio.sleep(request.every)
            except asyncio.CancelledError:
                ends.append("cancelled")
                raise
            ends.append("ended")

    return Counter


@pytest.fixture
def interface() -> CountInterface:
    return count_interface()


async def test_chunks_arrive_in_order_and_the_stream_ends(
    bus: Bus, start_service: StartService, interface: CountInterface
) -> None:
    ends: list[str] = []
    await start_service(counter_service(interface, ends))

    async with bus.stream(interface, Count(upto=5)) as chunks:
        got = [chunk.n async for chunk in chunks]

    assert got == [0, 1, 2, 3, 4]
    assert ends == ["ended"]


async def test_leaving_early_cancels_the_handler(
    bus: Bus, start_service: StartService, interface: CountInterface
) -> None:
    ends: list[str] = []
    await start_service(counter_service(interface, ends))

    async with bus.stream(interface, Count()) as chunks:
        async for chunk in chunks:
            if chunk.n == 3:
                break

    await eventually(lambda: ends == ["cancelled"], what="the handler cancelled")


async def test_a_cancel_sent_before_the_handler_started_still_stops_it(
    bus: Bus, start_service: StartService, interface: CountInterface
) -> None:
    ends: list[str] = []
    await start_service(counter_service(interface, ends), settings={"max_concurrency": 1})
    first = bus.stream(interface, Count())
    await first.__anext__()  # the only slot is taken

    second = bus.stream(interface, Count(), timeout=30)  # its deadline is far: it stays queued
    with pytest.raises(TimeoutError):  # waits for the slot: the caller leaves and cancels, unheard
        await asyncio.wait_for(second.__anext__(), 0.3)
    await first.aclose()  # frees the slot: the second handler starts after its cancel

    await eventually(
        lambda: ends == ["cancelled", "cancelled"], timeout=5, what="both handlers cancelled"
    )
    await asyncio.sleep(0.2)
    assert ends == ["cancelled", "cancelled"]
