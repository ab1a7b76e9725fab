"""The test kit itself: MockService answers on the real bus, eventually waits and explains."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from framework_helpers import EchoReply, EchoRequest, Note, echo_interface, note_interface, unique

from agentbus.framework import Bus, MessageContext, RemoteError, Service, ServiceError, Settings
from agentbus.framework.testing import MockService, eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces import BusMessage, ErrorCode, stream_interface


class Count(BusMessage):
    to: int


class Number(BusMessage):
    n: int


def count_interface() -> Any:
    return stream_interface(
        f"test.count{uuid.uuid4().hex[:10]}", "1.0.0", request=Count, chunk=Number
    )


def reply(text: str) -> EchoReply:
    return EchoReply(text=text, instance="mock", correlation_id="-")


async def test_a_fixed_reply_answers_every_request_and_requests_are_recorded(
    settings: Settings, bus: Bus
) -> None:
    echo = echo_interface()
    async with MockService({echo: reply("always")}, settings, name=unique("mock")) as mock:
        first = await bus.request(echo, EchoRequest(text="a"))
        second = await bus.request(echo, EchoRequest(text="b"))

    assert (first.text, second.text) == ("always", "always")
    assert [r.text for r in mock.received(echo)] == ["a", "b"]  # type: ignore[attr-defined]


async def test_functions_answer_sync_or_async_with_or_without_the_context(
    settings: Settings, bus: Bus
) -> None:
    plain, with_ctx, failing = echo_interface(), echo_interface(), echo_interface()

    def upper(request: EchoRequest) -> EchoReply:
        return reply(request.text.upper())

    async def subject(request: EchoRequest, ctx: MessageContext) -> EchoReply:
        return reply(ctx.subject)

    def refuse(request: EchoRequest) -> EchoReply:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no {request.text} here")

    answers: dict[Any, Any] = {plain: upper, with_ctx: subject, failing: refuse}
    async with MockService(answers, settings, name=unique("mock")):
        assert (await bus.request(plain, EchoRequest(text="hi"))).text == "HI"
        assert (await bus.request(with_ctx, EchoRequest(text="x"))).text.startswith("agentbus.")
        with pytest.raises(RemoteError) as refused:
            await bus.request(failing, EchoRequest(text="cake"))

    assert refused.value.code == "not_found"
    assert refused.value.reply.message == "no cake here"


async def test_streams_answer_from_a_list_or_an_async_generator(
    settings: Settings, bus: Bus
) -> None:
    listed, generated = count_interface(), count_interface()

    async def numbers(request: Count) -> AsyncIterator[Number]:
        for n in range(request.to):
            yield Number(n=n)

    answers: dict[Any, Any] = {listed: [Number(n=7), Number(n=8)], generated: numbers}
    async with MockService(answers, settings, name=unique("mock")):
        async with bus.stream(listed, Count(to=0)) as chunks:
            assert [c.n async for c in chunks] == [7, 8]
        async with bus.stream(generated, Count(to=3)) as chunks:
            assert [c.n async for c in chunks] == [0, 1, 2]


async def test_an_event_answer_is_a_subscriber(settings: Settings, bus: Bus) -> None:
    note = note_interface()
    heard: list[str] = []
    async with MockService(
        {note: lambda event: heard.append(event.text)}, settings, name=unique("mock")
    ) as mock:
        await bus.publish(note, Note(text="hello"))
        await eventually(lambda: heard == ["hello"], what="the mock to hear the event")

    assert [e.text for e in mock.received(note)] == ["hello"]  # type: ignore[attr-defined]


def test_an_event_needs_a_function_and_a_request_one_reply(settings: Settings) -> None:
    with pytest.raises(TypeError, match="give a function"):
        list(MockService({note_interface(): reply("x")}, settings).declarations())


async def test_eventually_returns_the_value_and_says_what_it_waited_for() -> None:
    calls: list[int] = []

    def third_time() -> int | None:
        calls.append(1)
        if len(calls) < 3:
            raise LookupError("not yet")  # an exception counts as "not yet"
        return len(calls)

    assert await eventually(third_time, interval=0.01) == 3
    with pytest.raises(AssertionError, match=r"waited 0.1s for the answer; last value: 0"):
        await eventually(lambda: 0, timeout=0.1, interval=0.01, what="the answer")
    with pytest.raises(AssertionError, match=r"last error: LookupError\('never'\)"):
        await eventually(_never, timeout=0.05, interval=0.01)


async def _never() -> bool:
    raise LookupError("never")


async def test_start_service_passes_constructor_arguments_and_settings_changes(
    start_service: StartService,
) -> None:
    class Configured(Service):
        name = unique("configured")

        def __init__(self, settings: Settings, *, greeting: str, **kwargs: Any) -> None:
            super().__init__(settings, **kwargs)
            self.greeting = greeting

    service = await start_service(
        Configured, greeting="hej", instance="one", settings={"max_concurrency": 3}
    )

    assert (service.greeting, service.instance, service.settings.max_concurrency) == (
        "hej",
        "one",
        3,
    )
