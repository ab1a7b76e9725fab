"""Shared pieces of the framework tests: per-test interfaces and services, polling, raw requests.

The nats-server is session-scoped, so every test declares its own interfaces
(unique names, hence unique subjects) and services (unique names, hence unique
queue groups, durables and discovery names): nothing one test leaves behind can
answer or consume another test's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from agentbus.framework import Service, handles
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import ServiceError
from agentbus.framework.testing import child_environment
from agentbus.interfaces.message import (
    BusMessage,
    Interface,
    event_interface,
    request_interface,
)

REPO = Path(__file__).resolve().parents[2]


def unique(prefix: str) -> str:
    """``prefix-1a2b3c4d``: a service name, durable or token no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- a request interface and a service that serves it -----------------------------------------


class EchoRequest(BusMessage):
    text: str
    delay: float = 0.0
    fail: str | None = None
    """``crash`` raises, ``refuse`` raises ServiceError(not_found), ``wrong`` returns a bad type."""


class EchoReply(BusMessage):
    text: str
    instance: str
    correlation_id: str


class Other(BusMessage):
    """Not the reply type of any interface: what a buggy handler might return."""

    value: int = 0


EchoInterface = Interface[EchoRequest, EchoReply]


def echo_interface(version: str = "1.0.0") -> EchoInterface:
    """A fresh request interface ``test.echo<hex>`` on a subject of its own."""
    return request_interface(
        f"test.echo{uuid.uuid4().hex[:10]}", version, request=EchoRequest, reply=EchoReply
    )


def echo_service(interface: EchoInterface, service_name: str | None = None) -> type[Service]:
    """A service class (unique name) that echoes, sleeps or fails as the request asks."""
    chosen = service_name or unique("echo")

    class Echo(Service):
        """Echoes text back."""

        name = chosen
        version = "1.2.3"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.handled = 0

        @handles(interface)
        async def echo(self, request: EchoRequest, ctx: MessageContext) -> BusMessage:
            self.handled += 1
            if request.delay:
                await asyncio.sleep(request.delay)
            if request.fail == "crash":
                raise RuntimeError("boom")
            if request.fail == "refuse":
                raise ServiceError("not_found", f"no such thing: {request.text}", key=request.text)
            if request.fail == "wrong":
                return Other(value=1)
            return EchoReply(
                text=request.text,
                instance=self.instance,
                correlation_id=ctx.metadata.correlation_id,
            )

    return Echo


# -- an event interface ------------------------------------------------------------------------


class Note(BusMessage):
    text: str
    number: int = 0


NoteInterface = Interface[Note, BusMessage]


def note_interface() -> NoteInterface:
    """A fresh event interface ``test.note<hex>`` (its own subject in AGENTBUS_EVENTS)."""
    return event_interface(f"test.note{uuid.uuid4().hex[:10]}", "1.0.0", payload=Note)


# -- raw protocol helpers ----------------------------------------------------------------------


async def request_json(
    bus: Bus, subject: str, data: bytes = b"", timeout: float = 2.0
) -> dict[str, Any]:
    """A raw request whose reply is a JSON object (``$SRV.*``)."""
    msg = await bus.nc.request(subject, data, timeout=timeout)
    document: dict[str, Any] = json.loads(msg.data)
    return document


async def gather_replies(bus: Bus, subject: str, expected: int, timeout: float = 2.0) -> list[Msg]:
    """Send one request and collect replies until ``expected`` arrived (or ``timeout``)."""
    inbox = bus.new_inbox()
    replies: list[Msg] = []
    done = asyncio.Event()

    async def collect(msg: Msg) -> None:
        replies.append(msg)
        if len(replies) >= expected:
            done.set()

    subscription = await bus.nc.subscribe(inbox, cb=collect)
    try:
        await bus.nc.publish(subject, b"", reply=inbox)
        with contextlib.suppress(TimeoutError):  # fewer replies than expected: return them
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        await subscription.unsubscribe()
    return replies


async def start_slow_service(
    settings: Settings,
    interface_name: str,
    service_name: str,
    log: Path,
    *,
    grace: float,
    max_concurrency: int | None = None,
) -> asyncio.subprocess.Process:
    """``slow_service.py`` (the echo service, slowly) as a process of its own, its output in
    ``log``: for tests of real signals."""
    env = child_environment()
    env.update(
        AGENTBUS_NATS_URL=settings.nats_url or "",
        AGENTBUS_DATA_DIR=str(settings.data_dir),
        AGENTBUS_INSTANCE="proc",
        AGENTBUS_SHUTDOWN_GRACE=str(grace),
        TEST_INTERFACE=interface_name,
        TEST_SERVICE=service_name,
    )
    if max_concurrency is not None:
        env["AGENTBUS_MAX_CONCURRENCY"] = str(max_concurrency)
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("slow_service.py")),
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


async def requests_received(bus: Bus, name: str) -> int:
    """Requests the process ``proc`` of service ``name`` received, from its ``$SRV.STATS``;
    -1 while it does not answer."""
    try:
        stats = await request_json(bus, f"$SRV.STATS.{name}.proc", timeout=0.5)
    except Exception:  # not serving (yet)
        return -1
    count: int = stats["endpoints"][0]["num_requests"]
    return count
