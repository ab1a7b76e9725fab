"""Events through JetStream: durable consumers, load sharing, broadcast, retries, dead letters."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from framework_helpers import (
    EchoReply,
    EchoRequest,
    Note,
    NoteInterface,
    echo_interface,
    note_interface,
    unique,
)
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from agentbus.framework import Service, handles, subscribes
from agentbus.framework.bus import Bus
from agentbus.framework.context import MessageContext
from agentbus.framework.events import (
    DEAD_ERROR,
    DEAD_REASON,
    DEAD_SERVICE,
    DEAD_SUBJECT,
    DEAD_TRIES,
    backoff,
)
from agentbus.framework.jetstream import DEAD_LETTER
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.message import BusMessage
from agentbus.interfaces.metadata import MSG_ID, Metadata, Source
from agentbus.interfaces.subjects import dead_letter_subject, event_subject


def collector(interface: NoteInterface, *, fail_on: str | None = None) -> type[Service]:
    """A service (unique name) that records each event it handles, and each try.

    Events whose text is ``fail_on`` always fail; ``fail-once:*`` fail on the first try.
    """
    chosen = unique("collector")

    class Collector(Service):
        name = chosen

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.events: list[Note] = []
            self.contexts: list[MessageContext] = []
            self.tries: Counter[str] = Counter()

        @subscribes(interface)
        async def on_note(self, event: Note, ctx: MessageContext) -> None:
            self.tries[event.text] += 1
            if event.text == fail_on:
                raise ValueError(f"cannot digest {event.text}")
            if event.text.startswith("fail-once:") and self.tries[event.text] == 1:
                raise ConnectionError("flaky dependency")
            self.events.append(event)
            self.contexts.append(ctx)

    return Collector


def texts(service: Service) -> list[str]:
    return [e.text for e in service.events]  # type: ignore[attr-defined]


async def dead_letter(bus: Bus, service: str, subject: str) -> RawStreamMsg:
    found: list[RawStreamMsg] = []

    async def parked() -> bool:
        try:
            found.append(
                await bus.js.get_last_msg(DEAD_LETTER.name, dead_letter_subject(service, subject))
            )
        except NotFoundError:
            return False
        return True

    await eventually(parked, what=f"a dead letter from {service}")
    return found[0]


def event_count(service: Service, outcome: str) -> float:
    subject = event_subject(service.subscriptions[0].interface.name, 1)
    value = service.metrics.registry.get_sample_value(
        "agentbus_events_total", {"service": service.name, "subject": subject, "outcome": outcome}
    )
    return value or 0.0


async def test_subscriber_gets_published_events_in_order(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    service = await start_service(collector(interface))

    for i in range(5):
        await bus.publish(interface, Note(text=f"n{i}", number=i))

    await eventually(lambda: len(texts(service)) == 5, what="5 events handled")
    assert texts(service) == [f"n{i}" for i in range(5)]
    ctx = service.contexts[0]
    assert ctx.metadata.source == bus.source
    assert ctx.metadata.interface == interface.name
    assert ctx.subject == event_subject(interface.name, 1)
    await eventually(lambda: event_count(service, "ok") == 5, what="5 acked")  # counted after


async def test_extra_fields_in_events_are_ignored(start_service: StartService, bus: Bus) -> None:
    """Events are read leniently: a newer minor version's extra field does not break readers."""
    interface = note_interface()
    service = await start_service(collector(interface))

    await bus.js.publish(event_subject(interface.name, 1), b'{"text": "new", "added_in_1_1": true}')

    await eventually(lambda: texts(service) == ["new"], what="the event handled")


async def test_replicas_share_one_durable_consumer(start_service: StartService, bus: Bus) -> None:
    interface = note_interface()
    cls = collector(interface)
    first = await start_service(cls, instance="a")
    second = await start_service(cls, instance="b")
    assert first.subscriptions[0].durable == second.subscriptions[0].durable

    for i in range(30):
        await bus.publish(interface, Note(text=str(i)))

    def total() -> int:
        return len(texts(first)) + len(texts(second))

    await eventually(lambda: total() >= 30, what="30 events handled")
    await asyncio.sleep(0.3)  # a duplicate delivery would show up by now
    assert sorted(texts(first) + texts(second), key=int) == [str(i) for i in range(30)]


async def test_different_services_each_get_every_event(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    one = await start_service(collector(interface))
    two = await start_service(collector(interface))

    for i in range(20):
        await bus.publish(interface, Note(text=str(i)))

    expected = [str(i) for i in range(20)]
    await eventually(lambda: texts(one) == texts(two) == expected, what="both got all 20")


async def test_events_published_while_down_arrive_after_restart(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    cls = collector(interface)
    before = await start_service(cls)
    await bus.publish(interface, Note(text="while up"))
    await eventually(lambda: texts(before) == ["while up"], what="first event handled")
    await before.stop()

    await bus.publish(interface, Note(text="while down"))
    after = await start_service(cls)

    await eventually(lambda: texts(after) == ["while down"], what="the missed event handled")


async def test_failing_handler_is_retried_then_succeeds(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    service = await start_service(collector(interface), settings={"event_max_deliver": 3})

    await bus.publish(interface, Note(text="fail-once:x"))

    await eventually(lambda: texts(service) == ["fail-once:x"], what="handled on the second try")
    assert service.tries["fail-once:x"] == 2
    assert event_count(service, "retried") == 1
    await eventually(lambda: event_count(service, "ok") == 1, what="counted once ok")
    with pytest.raises(NotFoundError):
        await bus.js.get_last_msg(
            DEAD_LETTER.name,
            dead_letter_subject(service.name, event_subject(interface.name, 1)),
        )


async def test_handler_that_keeps_failing_is_dead_lettered(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    service = await start_service(
        collector(interface, fail_on="poison"), settings={"event_max_deliver": 2}
    )
    subject = event_subject(interface.name, 1)
    metadata = bus.metadata(interface)

    await bus.publish(interface, Note(text="poison"), metadata=metadata)
    await bus.publish(interface, Note(text="good"))

    parked = await dead_letter(bus, service.name, subject)
    assert Note.model_validate_json(parked.data or b"") == Note(text="poison")
    headers = parked.headers or {}
    assert headers[DEAD_REASON] == "handler_failed"
    assert headers[DEAD_TRIES] == "2"
    assert headers[DEAD_SERVICE] == service.name
    assert headers[DEAD_SUBJECT] == subject
    assert headers[DEAD_ERROR] == "ValueError: cannot digest poison"
    assert headers[MSG_ID].startswith(metadata.message_id)
    assert "Agentbus" in headers, "the original metadata travels with the dead letter"
    assert service.tries["poison"] == 2
    await eventually(lambda: texts(service) == ["good"], what="later events still handled")
    await eventually(lambda: event_count(service, "dead_lettered") == 1, what="counted dead")
    assert event_count(service, "retried") == 1


async def test_undecodable_event_goes_straight_to_dead_letter(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    service = await start_service(collector(interface), settings={"event_max_deliver": 5})
    subject = event_subject(interface.name, 1)

    await bus.js.publish(subject, b"{definitely not json")
    await bus.js.publish(subject, b'{"number": 3}')  # JSON, but no text
    await bus.publish(interface, Note(text="fine"))

    await eventually(lambda: texts(service) == ["fine"], what="the good event handled")
    parked = await dead_letter(bus, service.name, subject)
    assert parked.data == b'{"number": 3}'
    assert (parked.headers or {})[DEAD_REASON] == "undecodable"
    assert (parked.headers or {})[DEAD_TRIES] == "1"
    assert service.tries == {"fine": 1}, "the handler never saw the bad ones"
    await eventually(lambda: event_count(service, "dead_lettered") == 2, what="both counted")


async def test_handler_requests_and_publishes_carry_the_cause(
    start_service: StartService, bus: Bus
) -> None:
    trigger, consequence, echo = note_interface(), note_interface(), echo_interface()
    seen_by_echo: list[Metadata] = []
    echo_name, relay_name = unique("echo"), unique("relay")

    class Echo(Service):
        name = echo_name

        @handles(echo)
        async def answer(self, request: EchoRequest, ctx: MessageContext) -> BusMessage:
            seen_by_echo.append(ctx.metadata)
            return EchoReply(
                text=request.text,
                instance=self.instance,
                correlation_id=ctx.metadata.correlation_id,
            )

    class Relay(Service):
        name = relay_name
        uses = (echo,)
        emits = (consequence,)

        @subscribes(trigger)
        async def on_trigger(self, event: Note, ctx: MessageContext) -> None:
            reply = await ctx.request(echo, EchoRequest(text=event.text))
            await ctx.publish(consequence, Note(text=f"relayed {reply.text}"))

    await start_service(Echo)
    relay = await start_service(Relay)
    sink = await start_service(collector(consequence))
    root = Metadata(trigger.name, trigger.version, Source("test", "pytest"))

    await bus.publish(trigger, Note(text="hello"), metadata=root)

    await eventually(lambda: texts(sink) == ["relayed hello"], what="the relayed event")
    (request_meta,) = seen_by_echo
    event_meta = sink.contexts[0].metadata
    for meta in (request_meta, event_meta):
        assert meta.correlation_id == root.message_id
        assert meta.causation_id == root.message_id
        assert meta.trace.trace_id == root.trace.trace_id
        assert meta.trace.span_id != root.trace.span_id
        assert meta.source == relay.source
    assert request_meta.interface == echo.name
    assert event_meta.interface == consequence.name
    assert request_meta.message_id != event_meta.message_id


async def test_publish_is_deduplicated_by_message_id(start_service: StartService, bus: Bus) -> None:
    interface = note_interface()
    service = await start_service(collector(interface))
    metadata = bus.metadata(interface)

    first = await bus.publish(interface, Note(text="once"), metadata=metadata)
    again = await bus.publish(interface, Note(text="once"), metadata=metadata)

    assert again.duplicate
    assert again.seq == first.seq
    await eventually(lambda: texts(service) == ["once"], what="the event handled")
    await asyncio.sleep(0.2)
    assert texts(service) == ["once"]


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.6]
    assert backoff(0) == 0.2
    assert backoff(50) == 30.0
