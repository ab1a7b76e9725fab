"""JetStream declarations: idempotent, merged, and what every service relies on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from framework_helpers import EchoRequest, echo_interface, echo_service, unique
from nats.js.api import StorageType

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.jetstream import (
    CONFIG_BUCKET,
    DEAD_LETTER,
    EVENTS,
    STREAMS,
    StreamSpec,
    declare_all,
    declare_stream,
    key_value,
)
from agentbus.interfaces.metadata import Source


async def test_declare_all_twice_is_idempotent(bus: Bus) -> None:
    await declare_all(bus.js)
    before = {spec.name: await bus.js.stream_info(spec.name) for spec in STREAMS}

    await declare_all(bus.js)

    for spec in STREAMS:
        info = await bus.js.stream_info(spec.name)
        assert set(spec.subjects) <= set(info.config.subjects or ())
        assert info.config.description == spec.description
        assert info.state.messages >= before[spec.name].state.messages  # nothing was recreated
        assert info.created == before[spec.name].created
    kv = await bus.js.key_value(CONFIG_BUCKET)
    assert kv is not None


async def test_streams_have_the_expected_subjects(bus: Bus) -> None:
    await declare_all(bus.js)

    expected = {
        "AGENTBUS_EVENTS": "agentbus.events.>",
        "AGENTBUS_ESCALATIONS": "agentbus.escalations.>",
        "AGENTBUS_AUDIT": "agentbus.audit.>",
        "AGENTBUS_DEADLETTER": "agentbus.deadletter.>",
    }
    for name, subject in expected.items():
        info = await bus.js.stream_info(name)
        assert subject in (info.config.subjects or [])
    events = await bus.js.stream_info(EVENTS.name)
    assert events.config.duplicate_window == EVENTS.duplicate_window
    assert DEAD_LETTER.subjects == ("agentbus.deadletter.>",)


async def test_services_starting_at_once_on_a_fresh_server_all_start(
    settings: Settings, tmp_path: Path
) -> None:
    """Nothing declared yet: concurrent declarations race, and every service still starts."""
    interface = echo_interface()
    with EmbeddedNats(tmp_path / "fresh") as server:
        fresh = settings.model_copy(update={"nats_url": server.url})
        services = [echo_service(interface)(fresh) for _ in range(3)]
        try:
            await asyncio.gather(*(service.start() for service in services))
            async with Bus(fresh, Source("test", "pytest")) as bus:
                for spec in STREAMS:
                    assert (await bus.js.stream_info(spec.name)).config.name == spec.name
                assert await bus.request(interface, EchoRequest(text="x"))
        finally:
            for service in services:
                await service.stop()


async def test_existing_stream_keeps_its_subjects_and_gains_ours(bus: Bus) -> None:
    name = unique("TEST").replace("-", "_").upper()
    try:
        await declare_stream(bus.js, StreamSpec(name, (f"{name}.a.>",), "first"), "memory")
        await declare_stream(bus.js, StreamSpec(name, (f"{name}.b.>",), "second"), "file")

        info = await bus.js.stream_info(name)
        assert sorted(info.config.subjects or ()) == [f"{name}.a.>", f"{name}.b.>"]
        assert info.config.description == "second"
        assert info.config.storage == StorageType.MEMORY, "storage cannot change in place"
    finally:
        await bus.js.delete_stream(name)


async def test_key_value_creates_then_opens(bus: Bus) -> None:
    bucket = unique("test_bucket").replace("-", "_")
    try:
        created = await key_value(bus.js, bucket)
        await created.put("k", b"v")
        opened = await key_value(bus.js, bucket)
        assert (await opened.get("k")).value == b"v"
    finally:
        await bus.js.delete_key_value(bucket)
