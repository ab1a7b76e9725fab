"""Service lifecycle: start, stop, restart, context manager, declaration errors."""

from __future__ import annotations

import asyncio
import random

import pytest
from framework_helpers import (
    EchoReply,
    EchoRequest,
    Note,
    echo_interface,
    echo_service,
    note_interface,
    request_json,
    unique,
)

from agentbus.framework import Service, handles, subscribes
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import ConfigError, NoRespondersError, NotConnectedError
from agentbus.framework.testing import eventually


async def test_stop_soon_after_start_never_hangs(settings: Settings, bus: Bus) -> None:
    """Stopping while start-up work (the config watch) is still settling must not hang."""
    interface = echo_interface()
    cls = echo_service(interface)
    rng = random.Random(7)
    for _ in range(25):
        service = cls(settings)
        await service.start()
        await asyncio.sleep(rng.uniform(0, 0.004))
        stopping = asyncio.create_task(service.stop())
        done, _ = await asyncio.wait({stopping}, timeout=3)
        assert done, "stop() hung"
        await stopping


async def test_context_manager_starts_and_stops(settings: Settings, bus: Bus) -> None:
    interface = echo_interface()
    cls = echo_service(interface)

    async with cls(settings) as service:
        assert (await bus.request(interface, EchoRequest(text="in"))).instance == service.instance

    with pytest.raises(NoRespondersError):
        await bus.request(interface, EchoRequest(text="out"))


async def test_start_and_stop_are_idempotent(settings: Settings, bus: Bus) -> None:
    interface = echo_interface()
    service = echo_service(interface)(settings)

    await service.start()
    await service.start()
    assert len(service.endpoints) == 1
    await service.stop()
    await service.stop()


async def test_hooks_run_in_order(settings: Settings, bus: Bus) -> None:
    interface = echo_interface()
    calls: list[str] = []
    base = echo_service(interface)

    class Hooked(base):  # type: ignore[misc, valid-type]
        uses = (interface,)

        async def initialize(self) -> None:
            calls.append("initialize")
            with pytest.raises(NoRespondersError):  # endpoints open only after initialize
                await self.bus.request(interface, EchoRequest(text="too early"), timeout=1)

        async def shutdown(self) -> None:
            calls.append("shutdown")

    async with Hooked(settings):
        calls.append("serving")
        await bus.request(interface, EchoRequest(text="x"))

    assert calls == ["initialize", "serving", "shutdown"]


async def test_failing_initialize_disconnects_and_raises(settings: Settings, bus: Bus) -> None:
    interface = echo_interface()
    base = echo_service(interface)

    class Broken(base):  # type: ignore[misc, valid-type]
        async def initialize(self) -> None:
            raise RuntimeError("no model weights")

    service = Broken(settings)
    with pytest.raises(RuntimeError, match="no model weights"):
        await service.start()

    with pytest.raises(NotConnectedError):
        service.bus.nc  # noqa: B018 - the property raises once disconnected
    with pytest.raises(NoRespondersError):
        await bus.request_raw(f"$SRV.PING.{service.name}", b"", timeout=1)


async def test_a_service_serves_requests_and_events_together(settings: Settings, bus: Bus) -> None:
    requests, events = echo_interface(), note_interface()
    received: list[str] = []
    chosen = unique("both")

    class Both(Service):
        name = chosen

        @handles(requests)
        async def answer(self, request: EchoRequest, ctx: MessageContext) -> EchoReply:
            return EchoReply(text=request.text, instance=self.instance, correlation_id="")

        @subscribes(events)
        async def on_note(self, event: Note, ctx: MessageContext) -> None:
            received.append(event.text)

    async with Both(settings) as service:
        assert (len(service.endpoints), len(service.subscriptions)) == (1, 1)
        await bus.request(requests, EchoRequest(text="req"))
        await bus.publish(events, Note(text="evt"))
        await eventually(lambda: received == ["evt"], what="the event handled")
        info = await request_json(bus, f"$SRV.INFO.{chosen}")

    assert received == ["evt"]
    assert [e["subject"] for e in info["endpoints"]] == [f"agentbus.{requests.name}.v1.*"]


def test_a_service_needs_a_name(settings: Settings) -> None:
    class Nameless(Service):
        pass

    with pytest.raises(ConfigError, match="must set the class attribute `name`"):
        Nameless(settings)


@pytest.mark.parametrize("bad", ["has.dot", "has space", "wild*"])
def test_a_service_name_must_be_a_subject_token(settings: Settings, bad: str) -> None:
    class Bad(Service):
        name = bad

    with pytest.raises(ValueError, match="subject token"):
        Bad(settings)


def test_a_service_version_must_be_semver(settings: Settings) -> None:
    class Bad(Service):
        name = "ok"
        version = "1.0"

    with pytest.raises(ValueError, match="semantic versioning"):
        Bad(settings)


def test_decorators_check_the_interface_kind() -> None:
    with pytest.raises(ConfigError, match="@handles needs a request interface"):
        handles(note_interface())
    with pytest.raises(ConfigError, match="@subscribes needs an event interface"):
        subscribes(echo_interface())


def test_instance_and_queue_group(settings: Settings) -> None:
    cls = echo_service(echo_interface())

    explicit = cls(settings, instance="i-1", queue_group="shared")
    generated = cls(settings)
    from_settings = cls(settings.model_copy(update={"instance": "from-env"}))

    assert (explicit.instance, explicit.queue_group) == ("i-1", "shared")
    assert len(generated.instance) == 12
    assert generated.queue_group == cls.name
    assert from_settings.instance == "from-env"
    assert str(explicit.source) == f"{cls.name}/i-1@1.2.3"
