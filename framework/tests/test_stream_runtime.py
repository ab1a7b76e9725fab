"""The framework's stream runtime (``@streams``, ``Bus.stream``), on a tiny service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from agentbus.framework import (
    Bus,
    BusError,
    ConfigError,
    MessageContext,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
    Service,
    ServiceError,
    error_from,
    streams,
)
from agentbus.interfaces import BusMessage, ErrorCode, request_interface, stream_interface
from agentbus.interfaces.subjects import as_caller, subject_for


class Count(BusMessage):
    to: int
    fail_at: int | None = None
    delay: float = 0.0
    wrong_type: bool = False


class Number(BusMessage):
    n: int


COUNT = stream_interface("test.count", "1.0.0", request=Count, chunk=Number)


class Counter(Service):
    name = "test-counter"
    version = "1.0.0"

    async def initialize(self) -> None:
        self.closed: list[int] = []
        self.cancelled = asyncio.Event()

    @streams(COUNT)
    async def count(self, request: Count, ctx: MessageContext) -> AsyncGenerator[BusMessage, None]:
        sent = 0
        try:
            for n in range(request.to):
                if n == request.fail_at:
                    raise ServiceError(ErrorCode.UPSTREAM, f"failed at {n}; retry", at=n)
                if request.delay:
                    await asyncio.sleep(request.delay)
                yield Count(to=n) if request.wrong_type else Number(n=n)
                sent += 1
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.closed.append(sent)


async def test_chunks_arrive_in_order_then_the_stream_ends(start_service: Any, bus: Bus) -> None:
    await start_service(Counter)

    async with bus.stream(COUNT, Count(to=200)) as chunks:
        numbers = [chunk.n async for chunk in chunks]

    assert numbers == list(range(200))


async def test_plain_iteration_without_a_context_manager(start_service: Any, bus: Bus) -> None:
    await start_service(Counter)

    assert [c.n async for c in bus.stream(COUNT, Count(to=3))] == [0, 1, 2]


async def test_an_error_after_some_chunks_raises_remote_error(start_service: Any, bus: Bus) -> None:
    service = await start_service(Counter)
    seen: list[int] = []

    async def read() -> None:
        async for chunk in bus.stream(COUNT, Count(to=10, fail_at=4)):
            seen.append(chunk.n)  # noqa: PERF401 - the chunks before the error are the point

    with pytest.raises(RemoteError) as caught:
        await read()

    assert seen == [0, 1, 2, 3]
    assert caught.value.code == "upstream"
    assert caught.value.details == {"at": 4}
    assert service.closed == [4]


async def test_leaving_early_cancels_the_handler(start_service: Any, bus: Bus) -> None:
    service = await start_service(Counter)

    async with bus.stream(COUNT, Count(to=1000, delay=0.02)) as chunks:
        async for chunk in chunks:
            if chunk.n == 2:
                break

    await asyncio.wait_for(service.cancelled.wait(), 5)
    assert service.closed[0] < 10


async def test_wrong_chunk_type_is_an_internal_error(start_service: Any, bus: Bus) -> None:
    await start_service(Counter)

    with pytest.raises(RemoteError) as caught:
        async for _ in bus.stream(COUNT, Count(to=3, wrong_type=True)):
            pass

    assert caught.value.code == "internal"
    assert "Count" in caught.value.reply.message


async def test_invalid_request_gets_an_error_chunk(start_service: Any, bus: Bus) -> None:
    await start_service(Counter)

    msg = await bus.request_raw(as_caller(subject_for(COUNT), "test"), b'{"to": "many"}', timeout=5)

    error = error_from(msg)
    assert error is not None
    assert error.code == "schema_violation"
    assert msg.headers is not None
    assert msg.headers["Agentbus-Seq"] == "0"


async def test_no_service_raises_no_responders(bus: Bus) -> None:
    with pytest.raises(NoRespondersError):
        async for _ in bus.stream(COUNT, Count(to=1)):
            pass


async def test_a_silent_service_times_out_per_chunk(start_service: Any, bus: Bus) -> None:
    await start_service(Counter)

    with pytest.raises(RequestTimeoutError):
        async for _ in bus.stream(COUNT, Count(to=5, delay=2), timeout=0.3):
            pass


def test_streams_needs_a_stream_interface_and_an_async_generator() -> None:
    echo = request_interface("test.echo", "1.0.0", request=Number, reply=Number)
    with pytest.raises(ConfigError, match="stream interface"):
        streams(echo)

    async def not_a_generator(self: Any, request: Count, ctx: MessageContext) -> Number:
        return Number(n=1)

    with pytest.raises(ConfigError, match="async generator"):
        streams(COUNT)(not_a_generator)


async def test_bus_stream_refuses_other_kinds(bus: Bus) -> None:
    echo = request_interface("test.echo", "1.0.0", request=Number, reply=Number)
    with pytest.raises(BusError, match="not a stream"):
        bus.stream(echo, Number(n=1))
