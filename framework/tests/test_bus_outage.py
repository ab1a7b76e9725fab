"""A bus outage inside a handler is ``unavailable`` (retry), not ``internal``; a bus whose
NATS is gone closes quietly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from framework_helpers import unique

from agentbus.framework import Service, handles
from agentbus.framework.auth import AuthFolder
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.context import MessageContext
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.errors import NotConnectedError, RemoteError
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.interfaces.message import BusMessage, request_interface
from agentbus.interfaces.metadata import Source


class Put(BusMessage):
    key: str


class Done(BusMessage):
    revision: int


@pytest.fixture
def doomed_server(tmp_path: Path, test_auth: AuthFolder) -> Iterator[EmbeddedNats]:
    """A server of this test's own, which the test kills."""
    with EmbeddedNats(tmp_path / "doomed", auth=test_auth.server_config) as server:
        yield server


async def test_a_kv_write_during_an_outage_answers_unavailable(
    start_service: StartService,
    bus: Bus,
    settings: Settings,
    doomed_server: EmbeddedNats,
) -> None:
    """The handler's KeyValue lives on a server that is killed: its write times out (as
    the executor's did in the NATS-crash trials) and the caller is told to retry."""
    interface = request_interface(
        f"test.put{unique('p').split('-')[1]}", "1.0.0", request=Put, reply=Done
    )
    store = Bus(
        settings.model_copy(update={"nats_url": doomed_server.url}),
        Source("store", "x"),
        patient=True,
    )
    await store.connect()
    try:
        kv = await store.nc.jetstream(timeout=0.5).create_key_value(bucket="outage")

        class Writer(Service):
            name = unique("writer")

            @handles(interface)
            async def put(self, request: Put, ctx: MessageContext) -> Done:
                revision = await kv.put(request.key, b"v")
                return Done(revision=revision)

        await start_service(Writer)
        assert (await bus.request(interface, Put(key="before"))).revision == 1

        doomed_server.kill()
        await eventually(lambda: not store.nc.is_connected, what="the store's connection lost")
        with pytest.raises(RemoteError) as refused:
            await bus.request(interface, Put(key="during"), timeout=5)
        assert refused.value.code == ErrorCode.UNAVAILABLE
        assert "retry" in str(refused.value)
        assert refused.value.details["exception"] in {"TimeoutError", "ConnectionClosedError"}
    finally:
        await asyncio.wait_for(store.close(), 5)


@pytest.mark.parametrize(
    "fault",
    [
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.ConnectionReconnectingError(),
        nats.errors.NoRespondersError(),
        nats.js.errors.ServiceUnavailableError(code=503, description="JetStream not ready"),
        nats.js.errors.APIError(code=503, description="JetStream system temporarily unavailable"),
        nats.js.errors.NoStreamResponseError(),
        NotConnectedError("not connected to NATS"),
    ],
    ids=type,
)
async def test_every_kind_of_bus_fault_is_unavailable(
    start_service: StartService, bus: Bus, fault: Exception
) -> None:
    interface = request_interface(
        f"test.fault{unique('f').split('-')[1]}", "1.0.0", request=Put, reply=Done
    )

    class Failing(Service):
        name = unique("failing")

        @handles(interface)
        async def put(self, request: Put, ctx: MessageContext) -> Done:
            if request.key == "wrapped":
                raise RuntimeError("the store failed") from fault
            raise fault

    await start_service(Failing)
    for key in ("plain", "wrapped"):
        with pytest.raises(RemoteError) as refused:
            await bus.request(interface, Put(key=key))
        assert refused.value.code == ErrorCode.UNAVAILABLE, key


async def test_a_handler_bug_is_still_internal(start_service: StartService, bus: Bus) -> None:
    interface = request_interface(
        f"test.bug{unique('b').split('-')[1]}", "1.0.0", request=Put, reply=Done
    )

    class Buggy(Service):
        name = unique("buggy")

        @handles(interface)
        async def put(self, request: Put, ctx: MessageContext) -> Done:
            try:
                raise nats.errors.TimeoutError
            except nats.errors.TimeoutError:
                raise KeyError(request.key) from None  # not caused by the timeout

    await start_service(Buggy)
    with pytest.raises(RemoteError) as failed:
        await bus.request(interface, Put(key="k"))
    assert failed.value.code == ErrorCode.INTERNAL


@pytest.mark.parametrize("patient", [True, False], ids=["reconnecting", "gave-up"])
async def test_bus_close_with_the_server_gone_does_not_raise(
    settings: Settings, doomed_server: EmbeddedNats, patient: bool
) -> None:
    bus = Bus(
        settings.model_copy(update={"nats_url": doomed_server.url}),
        Source("test", "close"),
        patient=patient,
    )
    await bus.connect()
    client = bus.nc
    doomed_server.kill()
    await eventually(lambda: not client.is_connected, what="the connection lost")

    await asyncio.wait_for(bus.close(), 5)

    assert client.is_closed
    with pytest.raises(NotConnectedError):
        bus.nc  # noqa: B018 - the property raises once disconnected
