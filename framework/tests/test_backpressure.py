"""Backpressure as a protocol: deadlines travel with requests, a full queue answers
``overloaded`` at once, expired work is dropped unrun, and ``Bus.request`` retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from framework_helpers import EchoReply, EchoRequest, echo_interface, echo_service, unique
from nats.aio.msg import Msg

from agentbus.framework import Service, streams
from agentbus.framework.bus import Bus
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import RemoteError, RequestTimeoutError
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.framework.wire import TIMEOUT_HEADER, deadline_of, error_from, to_json
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.message import BusMessage, stream_interface
from agentbus.interfaces.subjects import as_caller, subject_for


def counted(service: Service, name: str, **labels: str) -> float:
    """A sample of the service's own Prometheus registry (0 when never counted)."""
    value = service.metrics.registry.get_sample_value(name, {"service": service.name, **labels})
    return value or 0.0


async def raw_call(bus: Bus, subject: str, data: bytes, timeout: float) -> ErrorReply | None:
    """One request with its deadline header and no retries: the error reply, or None for ok."""
    msg = await bus.request_raw(
        subject, data, headers={TIMEOUT_HEADER: f"{timeout:g}"}, timeout=timeout
    )
    return error_from(msg)


async def test_a_burst_beyond_the_queue_gets_ok_or_overloaded_never_a_timeout(
    start_service: StartService, bus: Bus
) -> None:
    """400 requests at 4 slots and 16 places: each caller hears back at once, none times
    out (without the queue's bound the last would wait 5 s of work, past their 3 s)."""
    interface = echo_interface()
    service = await start_service(
        echo_service(interface), settings={"max_concurrency": 4, "max_queue": 16}
    )
    subject = as_caller(subject_for(interface), bus.identity)
    data = to_json(EchoRequest(text="x", delay=0.05))

    outcomes = await asyncio.gather(
        *(raw_call(bus, subject, data, timeout=3.0) for _ in range(400)), return_exceptions=True
    )

    not_replies = [o for o in outcomes if isinstance(o, BaseException)]
    assert not not_replies, f"{len(not_replies)} got no reply, first: {not_replies[0]!r}"
    errors = [o for o in outcomes if isinstance(o, ErrorReply)]
    assert {e.code for e in errors} == {ErrorCode.OVERLOADED}
    assert all(e.retry_after is not None and e.retry_after > 0 for e in errors)
    assert "retry" in errors[0].message
    ok = len(outcomes) - len(errors)
    assert ok >= 20, "the 4 slots and 16 places were all used"
    assert service.handled == ok
    path = subject_for(interface)
    assert counted(service, "agentbus_request_errors_total", subject=path, code="overloaded") == (
        len(errors)
    )


async def test_two_hundred_callers_with_retries_are_all_served(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    service = await start_service(
        echo_service(interface), settings={"max_concurrency": 4, "max_queue": 16}
    )

    replies = await asyncio.gather(
        *(
            bus.request(interface, EchoRequest(text=str(i), delay=0.02), timeout=30)
            for i in range(200)
        )
    )

    assert sorted(int(r.text) for r in replies) == list(range(200))
    path = subject_for(interface)
    refused = counted(service, "agentbus_request_errors_total", subject=path, code="overloaded")
    assert refused > 0, "the burst was refused at first: the callers retried"


async def test_a_caller_that_runs_out_of_time_gets_the_overloaded_error(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    await start_service(echo_service(interface), settings={"max_concurrency": 1, "max_queue": 0})
    busy = asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=2.0)))
    try:
        await asyncio.sleep(0.2)
        with pytest.raises(RemoteError) as refused:
            await bus.request(interface, EchoRequest(text="y"), timeout=0.5)
        assert refused.value.code == ErrorCode.OVERLOADED
        assert refused.value.reply.retry_after is not None
    finally:
        await busy


async def test_no_handler_starts_after_its_callers_deadline(
    start_service: StartService, bus: Bus
) -> None:
    """Two slots busy for a second, eight callers that wait 0.3 s: the eight are dropped
    unrun when the slots free (without deadlines all ten handlers would run)."""
    interface = echo_interface()
    service = await start_service(
        echo_service(interface), settings={"max_concurrency": 2, "max_queue": 16}
    )
    slow = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="slow", delay=1.0)))
        for _ in range(2)
    ]
    await eventually(lambda: service.handled == 2, what="both slots busy")

    late = await asyncio.gather(
        *(bus.request(interface, EchoRequest(text="late"), timeout=0.3) for _ in range(8)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RequestTimeoutError) for r in late), late
    assert [r.text for r in await asyncio.gather(*slow)] == ["slow", "slow"]

    path = subject_for(interface)
    await eventually(
        lambda: counted(service, "agentbus_requests_dropped_total", subject=path) == 8,
        what="the 8 expired requests counted as dropped",
    )
    await asyncio.sleep(0.2)  # a handler started by mistake would have counted by now
    assert service.handled == 2


class Tick(BusMessage):
    n: int = 0


async def test_an_expired_stream_request_is_not_started(
    start_service: StartService, bus: Bus
) -> None:
    interface = stream_interface(
        f"test.ticks{unique('t').split('-')[1]}", "1.0.0", request=Tick, chunk=Tick
    )
    started: list[int] = []

    class Ticker(Service):
        name = unique("ticker")

        @streams(interface)
        async def ticks(self, request: Tick, ctx: MessageContext) -> AsyncIterator[Tick]:
            started.append(request.n)
            await asyncio.sleep(1.0)
            yield Tick(n=request.n)

    await start_service(Ticker, settings={"max_concurrency": 1})
    first = bus.stream(interface, Tick(n=1), timeout=5)
    first_chunk = asyncio.create_task(first.__anext__())
    await eventually(lambda: started == [1], what="the first stream running")
    second = bus.stream(interface, Tick(n=2), timeout=0.2)
    with pytest.raises(RequestTimeoutError):
        await second.__anext__()
    assert (await first_chunk).n == 1
    await first.aclose()
    await asyncio.sleep(0.3)  # the slot is free: a stream started by mistake shows now
    assert started == [1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2.5", 102.5),
        ("0", 100.0),
        ("-3", 100.0),  # already past: dropped at once
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e12", None),
    ],
)
def test_the_deadline_header_is_read_defensively(header: str, expected: Any) -> None:
    assert deadline_of({TIMEOUT_HEADER: header}, received=100.0) == expected
    assert deadline_of(None, received=100.0) is None


async def test_requests_without_a_deadline_are_still_served(
    start_service: StartService, bus: Bus
) -> None:
    """A caller that predates the header (plain nats-py) is served as before."""
    interface = echo_interface()
    await start_service(echo_service(interface))
    subject = as_caller(subject_for(interface), bus.identity)
    msg = await bus.nc.request(subject, to_json(EchoRequest(text="old")), timeout=5)
    assert error_from(msg) is None


async def test_a_request_that_would_expire_in_the_queue_is_refused_at_once(
    start_service: StartService, bus: Bus
) -> None:
    """Its one slot takes a second per request (measured): a caller that waits 0.3 s is
    told ``overloaded`` at once instead of waiting in the queue until it times out."""
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_concurrency": 1})
    await bus.request(interface, EchoRequest(text="measure", delay=1.0))
    busy = asyncio.create_task(bus.request(interface, EchoRequest(text="busy", delay=1.0)))
    try:
        await eventually(lambda: service.handled == 2, what="the slot busy again")
        with pytest.raises(RemoteError) as refused:
            await bus.request(interface, EchoRequest(text="hurried"), timeout=0.3)
        assert refused.value.code == ErrorCode.OVERLOADED
        assert refused.value.reply.retry_after is not None
        assert refused.value.reply.retry_after > 0.3
    finally:
        await busy
    assert service.handled == 2


async def test_the_client_retries_overloaded_only_when_told_when_and_sends_the_time_left(
    bus: Bus,
) -> None:
    """A hand-written responder: ``overloaded`` with a hint twice, then a reply; the caller
    retries with what is left of its timeout. Without a hint it raises at once."""
    interface = echo_interface()
    subject = as_caller(subject_for(interface), bus.identity)
    seen: list[float] = []
    hint: list[float | None] = [0.05]

    async def respond(msg: Msg) -> None:
        seen.append(float((msg.headers or {})[TIMEOUT_HEADER]))
        if len(seen) <= 2:
            refusal = ErrorReply(code=ErrorCode.OVERLOADED, message="full", retry_after=hint[0])
            await bus.nc.publish(msg.reply, to_json(refusal), headers=refusal.headers())
        else:
            reply = EchoReply(text="at last", instance="raw", correlation_id="c")
            await bus.nc.publish(msg.reply, to_json(reply))

    subscription = await bus.subscribe_raw(subject, respond)
    try:
        assert (await bus.request(interface, EchoRequest(text="x"), timeout=5)).text == "at last"
        assert len(seen) == 3
        assert seen[0] <= 5.0
        assert seen[0] > seen[1] > seen[2], "each try carries the time left"

        seen.clear()
        hint[0] = None
        with pytest.raises(RemoteError) as refused:
            await bus.request(interface, EchoRequest(text="x"), timeout=5)
        assert refused.value.code == ErrorCode.OVERLOADED
        assert len(seen) == 1, "no hint: no retry"
    finally:
        await subscription.unsubscribe()


async def test_a_past_backlog_does_not_refuse_callers_when_the_queue_is_short(
    start_service: StartService, bus: Bus
) -> None:
    """20 requests of 0.1 s at one slot: the last waited about 2 s. Afterwards, with one
    request running and one queued, a caller that waits 1 s is queued and served (the wait
    is estimated per place in the queue, not from what the last ones waited in a longer
    one)."""
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_concurrency": 1})
    await asyncio.gather(
        *(bus.request(interface, EchoRequest(text="x", delay=0.1), timeout=30) for _ in range(20))
    )
    ahead = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="ahead", delay=0.1)))
        for _ in range(2)
    ]
    await eventually(
        lambda: service.handled == 21 and service._slots.queued == 1,
        what="one request ahead running, one queued",
    )

    reply = await bus.request(interface, EchoRequest(text="short"), timeout=1.0)

    assert reply.text == "short"
    assert [r.text for r in await asyncio.gather(*ahead)] == ["ahead", "ahead"]
